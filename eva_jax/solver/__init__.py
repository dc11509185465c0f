"""The solver: DPO-family and RLOO losses, optimizers, train state and jitted train steps."""
