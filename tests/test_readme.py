"""The README's Python examples run, in order, in one namespace: the README never lies."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert "did you mean '0.weight'?" in capsys.readouterr().out


def test_structure_table_lists_every_structure_with_its_real_signature():
    import dataclasses
    import inspect

    import functional_struct as fs

    text = README.read_text()
    for name in fs.__all__:
        obj = getattr(fs, name)
        if not (inspect.isclass(obj) and issubclass(obj, fs.AbstractStructure)):
            continue
        if inspect.isabstract(obj) or name.startswith("Abstract"):
            continue
        row = re.search(rf"^\| `{name}\((.*?)\)` \|", text, flags=re.M)
        assert row, f"{name} has no row in the README structure table"
        if name in ("Chain", "Sum", "Kronecker"):  # variadic parts: documented as *parts
            continue
        fields = [f.name for f in dataclasses.fields(obj) if f.init]
        documented = [p.split("=")[0].strip() for p in row.group(1).split(",") if p.strip()]
        assert documented == fields, (name, documented, fields)


def test_the_structures_whose_inverse_projects_are_the_ones_the_readme_lists():
    import inspect

    import functional_struct as fs

    text = " ".join(README.read_text().split())
    listed = re.search(
        r"for the structures whose `inverse_outside` is `\"project\"` \((.*?)\)", text
    ).group(1)
    named = set(re.findall(r"`(\w+)`", listed))
    classes = {
        name
        for name in fs.__all__
        if inspect.isclass(getattr(fs, name))
        and issubclass(getattr(fs, name), fs.AbstractStructure)
        and not name.startswith("Abstract")
    }
    projecting = {n for n in classes if getattr(fs, n).inverse_outside == "project"}
    linear = {n for n in projecting if getattr(fs, n).linear is True}
    assert "masks and linear subspaces" in listed
    assert named == projecting - linear


def test_documented_ranges_table_is_the_catalog():
    """The README's range table states the catalog's figures, and lists every entry whose
    ranges differ from the defaults (the catalog is the one source; this keeps them equal)."""
    import ast
    import dataclasses

    import functional_struct as fs
    from functional_struct.testing import CATALOG, CatalogEntry

    defaults = {f.name: f.default for f in dataclasses.fields(CatalogEntry)}
    text = README.read_text()
    section = text[text.index("### Documented ranges") : text.index("## Guarantees")]
    rows = re.findall(r"^\| `(.+?)` \| (\S+) \| (\S+) \| (.+?) \|$", section, flags=re.M)
    assert rows, "no rows in the README's documented ranges table"
    namespace = {name: getattr(fs, name) for name in fs.__all__}
    listed = []
    for code, membership, finite, shapes in rows:
        structure = eval(code, namespace)  # noqa: S307 - the README's own text
        entries = [e for e in CATALOG if e.structure == structure]
        assert len(entries) == 1, f"README range row {code} matches {len(entries)} catalog entries"
        entry = entries[0]
        assert float(membership) == entry.max_magnitude, (code, membership, entry.max_magnitude)
        assert float(finite) == entry.finite_magnitude, (code, finite, entry.finite_magnitude)
        assert ast.literal_eval(f"({shapes},)") == entry.core_shapes, (code, shapes)
        listed.append(entry)
    for entry in CATALOG:
        ranges = (entry.max_magnitude, entry.finite_magnitude)
        if ranges != (defaults["max_magnitude"], defaults["finite_magnitude"]):
            assert entry in listed, f"{entry.id} has non-default ranges but no README row"
    sentence = "Every catalog entry not listed here is promised both up to 1e4."
    assert sentence in " ".join(section.split())
    assert defaults["max_magnitude"] == defaults["finite_magnitude"] == 1e4
