"""minimax-vllm: MiniMax-M2.x on vLLM, EKS p5 GPU nodes and an NLB, from one stack's settings."""

import pulumi

from components.platform import build
from components.scaling_settings import load_scaling
from components.settings import load

settings, secrets = load()
scaling = load_scaling(settings)
for name, value in build(settings, secrets, scaling).items():
    pulumi.export(name, value)
