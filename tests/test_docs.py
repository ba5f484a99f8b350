"""The README and the course home: every relative link and picture they show exists in the repository."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r'\]\(([^)\s]+)\)')


def _relative_targets(text):
    for t in LINK.findall(text):
        if re.match(r'\w+://|#|mailto:', t): continue
        yield t.split('#')[0]


def test_readme_links_and_pictures_resolve():
    missing = [t for t in _relative_targets((ROOT/'README.md').read_text()) if not (ROOT/t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_index_links_and_pictures_resolve():
    import json
    nb = json.loads((ROOT/'nbs'/'index.ipynb').read_text())
    text = '\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown')
    missing = [t for t in _relative_targets(text) if not (ROOT/'nbs'/t).exists()]
    assert not missing, f"nbs/index.ipynb links to missing files: {missing}"
