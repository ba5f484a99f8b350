#!/usr/bin/env python
"""Kaggle's anime sketch/colour pairs (S2), attached or downloaded with your Kaggle token.

The same as `colorize-data anime-pairs` (the command installed with the package); the code lives in
colorize_nbdev.datasets (nbs/95_datasets.ipynb). All options: python data_scripts/anime_pairs.py --help. Example:
  python data_scripts/anime_pairs.py --dest ~/colorize_data/anime --limit 2000
"""
import sys
from pathlib import Path

try: from colorize_nbdev.datasets import dataset_cli
except ImportError:                  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from colorize_nbdev.datasets import dataset_cli

if __name__ == '__main__':
    sys.exit(dataset_cli('anime-pairs'))
