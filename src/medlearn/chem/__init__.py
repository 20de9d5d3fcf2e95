"""The chemistry layer every drug-design task shares (``qsar``, ``cpi``, ``generate``).

* :mod:`~medlearn.chem.data` — SMILES CSVs in the chemprop / DeepChem layout, invalid-row reporting,
  target checks;
* :mod:`~medlearn.chem.featurize` — Morgan fingerprints, RDKit descriptors (cached), Tanimoto similarity;
* :mod:`~medlearn.chem.graph` — molecular graphs for directed message passing;
* :mod:`~medlearn.chem.splits` — Bemis-Murcko scaffolds and value strata cut by the one split service;
* :mod:`~medlearn.chem.properties` — canonical SMILES and simple molecular properties.

The tasks themselves live in :mod:`medlearn.tasks`. Heavy imports (RDKit) happen inside the functions.
"""

from medlearn.chem.data import MoleculeTable, load_smiles_csv

__all__ = ["MoleculeTable", "load_smiles_csv"]
