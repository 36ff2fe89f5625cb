"""neuromap's Lava Processes and ProcessModels.

Kept in a package of their own because Lava's compiler executes every ``.py`` file beside a Process
when it looks for ProcessModels (docs/reference/loihi_lava.md §1.3). Import them only after
``neuromap.backends.lava.compat.install()``.
"""
