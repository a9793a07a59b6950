"""Entry point of `pulumi up`: validate the stack's settings, then declare its resources."""

import pulumi

from components.program import build
from components.settings import load_settings

for name, value in build(load_settings()).items():
    pulumi.export(name, value)
