"""Whole-stack inspection at real size without the hardware: the memory plan, compiled programs on fake devices, the roofline.

These read models, sampling and solver (above the ground-floor `parallel` package), so they live in
their own package that nothing in the library imports; `--mode=plan` and `bench.scale_check` do.
"""
