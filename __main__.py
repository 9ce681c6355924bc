"""minimax-vllm: MiniMax-M2.x on vLLM, EKS p5 GPU nodes and an ALB, from one stack's settings."""

import pulumi

from components.platform.build import build
from components.platform.config import load
from components.platform.deploy_gate import stop_unless_ready

settings, secrets = load()
stop_unless_ready(settings)  # placeholders never reach AWS
for name, value in build(settings, secrets).items():
    pulumi.export(name, value)
