"""Code shared by every Lambda handler; packaged into each function's archive as the ``common`` package."""
