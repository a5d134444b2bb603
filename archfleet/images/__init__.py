"""Multi-arch images: build each platform (natively on a builder host of that architecture, else emulated),
publish one tag (a manifest list), and verify what is behind a tag.

- :mod:`archfleet.images.verify`  -- ``verify_tag(registry, ref, platforms) -> VerifyReport`` (the deploy pre-flight)
- :mod:`archfleet.images.plan`    -- which platform builds where (pure), input hashes
- :mod:`archfleet.images.build`   -- running the plan: builds, pushes, publishing the tag
"""
