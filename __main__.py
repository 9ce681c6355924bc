"""minimax-vllm: MiniMax-M2.x on vLLM, EKS p5 GPU nodes and an NLB, from one stack's settings."""

import pulumi

from components.config import load
from components.platform import build

settings, secrets = load()
for name, value in build(settings, secrets).items():
    pulumi.export(name, value)
