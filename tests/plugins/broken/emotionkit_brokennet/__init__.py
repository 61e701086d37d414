"""emotionkit-brokennet: a plugin whose import fails, as one with a missing dependency would."""

raise ImportError("emotionkit_brokennet needs the package 'brokennet_kernels', which is not installed")
