"""``register``: pairwise image registration, learned (VoxelMorph family) and classical (SimpleITK).

See :mod:`.task` for the training hooks, :mod:`.model` for the API class :class:`~.model.Registrator`
and the displacement-field convention, :mod:`.plan` for the planning rules and their evidence.
"""
