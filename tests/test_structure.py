"""The package's shape: no import cycles among its modules, counting imports inside functions."""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1]/'colorize_nbdev'


def _modules()->dict:
    mods = {}
    for f in PKG.rglob('*.py'):
        if f.name == '_modidx.py': continue
        parts = f.relative_to(PKG.parent).with_suffix('').parts
        mods['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = f
    return mods


def import_graph()->dict:
    "module -> the package modules it imports anywhere in its file (top level or inside functions)."
    mods, graph = _modules(), {}
    for m, f in mods.items():
        deps = set()
        for n in ast.walk(ast.parse(f.read_text())):
            if isinstance(n, ast.Import): targets = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom):
                base = n.module or ''
                if n.level:
                    pkg = m.split('.') if f.name == '__init__.py' else m.split('.')[:-1]
                    pkg = pkg[:len(pkg) - (n.level - 1)]
                    base = '.'.join(pkg + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in n.names]
            else: continue
            for t in targets:
                while t and t not in mods: t = t.rpartition('.')[0]
                if t and t != m: deps.add(t)
        graph[m] = deps
    return graph


def cycles(graph:dict)->list:
    "The strongly connected components with more than one module (Tarjan)."
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = counter[0]; counter[0] += 1; stack.append(v); on.add(v)
        for w in graph.get(v, ()):
            if w not in index: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: out.append(sorted(comp))
    for v in graph:
        if v not in index: visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
    assert cycles({'a': {'b'}, 'b': set()}) == []


def test_no_import_cycles_in_the_package():
    g = import_graph()
    assert 'colorize_nbdev.inference' in g and 'colorize_nbdev.modelfile' in g['colorize_nbdev.inference']   # the graph is real
    found = cycles(g)
    assert not found, 'import cycles: ' + '; '.join(' <-> '.join(c) for c in found)
