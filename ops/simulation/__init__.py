"""The model `make scaling` runs a stack's scaling policy on: the HPA's algorithm as KEDA's HPA
runs it (`hpa.py`) and the cluster it drives, replicas, GPU nodes, queue and load balancer
(`cluster.py`). `ops/scaling_sim.py` builds a stack's model, runs the traces and checks them."""
