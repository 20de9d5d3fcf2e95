"""Drug design: QSAR (featurisation, models, baselines, splits, metrics), generation and CPI.

Entry points: :class:`medlearn.chem.api.QSARModel` (scikit-learn style) and the ``medlearn qsar``
CLI (:mod:`medlearn.cli.qsar`). Heavy imports (torch, RDKit) happen inside the sub-modules.
"""

from medlearn.chem.data import MoleculeTable, load_smiles_csv

__all__ = ["MoleculeTable", "load_smiles_csv"]
