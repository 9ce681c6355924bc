"""`python -m ops sweep`: find and delete what an interrupted `pulumi destroy` left behind.

`run.py` gates and runs it; `scope.py` decides ownership from tags; `plan.py` plans the load
balancer side and `network.py` the VPC (`needs.py`: what a kept machine still routes
through; `endpoints.py`: its gateway endpoints); `rows.py` labels what it finds and reports what
blocks a delete; `errors.py` explains every AWS error a sweep can meet.
"""
