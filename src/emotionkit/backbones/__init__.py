"""Built-in backbones, one family per module.

Each module defines a module-level :class:`~emotionkit.interfaces.BackboneSpec`
named ``SPEC`` and is registered through emotionkit's own ``pyproject.toml``
entry points, exactly as a third-party backbone would be.
"""
