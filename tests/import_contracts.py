"""An import-linter contract type for what the built-in `forbidden` cannot say (see .importlinter).

With include_external_packages, import-linter (2.x) sees only the top package of an external
import (`airflow`), and its `forbidden` contract refuses subpackages of external packages. So
"only the vault imports airflow.providers.amazon" needs the import lines themselves: grimp keeps
each direct import's line, and this contract reads the dotted names off it.
"""

from __future__ import annotations

import re

from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck
from importlinter.domain.helpers import module_expressions_to_modules

# "from a.b import c, d" / "import a.b as x, e"; a parenthesised import keeps its module on this line
_FROM = re.compile(r"^\s*from\s+([\w.]+)\s+import\s+\(?\s*([\w\s,]*)")
_IMPORT = re.compile(r"^\s*import\s+([\w.\s,]+)")


def imported_names(line: str) -> set[str]:
    """Every dotted name an import line may bring in (`from a import b` gives a and a.b)."""
    if m := _FROM.match(line):
        names = [n.split()[0] for n in m.group(2).split(",") if n.strip()]
        return {m.group(1), *(f"{m.group(1)}.{n}" for n in names)}
    if m := _IMPORT.match(line):
        return {part.split()[0] for part in m.group(1).split(",") if part.strip()}
    return set()


class ForbiddenExternalSubpackagesContract(Contract):
    """Only `allowed_importers` may import (directly) any of `forbidden_modules`, which may be
    subpackages of external packages (`airflow.providers.amazon`)."""

    type_name = "forbidden_external_subpackages"

    source_modules = fields.SetField(subfield=fields.ModuleExpressionField())
    allowed_importers = fields.SetField(subfield=fields.ModuleExpressionField())
    forbidden_modules = fields.SetField(subfield=fields.StringField())

    def check(self, graph, verbose: bool) -> ContractCheck:
        def expand(expressions) -> set[str]:
            packages = {m.name for m in module_expressions_to_modules(graph, expressions)}
            return {d for p in packages for d in {p, *graph.find_descendants(p)}}

        forbidden = sorted(self.forbidden_modules)  # type: ignore[arg-type]
        roots = {f.split(".")[0] for f in forbidden}
        violations = []
        for importer in sorted(expand(self.source_modules) - expand(self.allowed_importers)):
            for root in sorted(roots & graph.find_modules_directly_imported_by(importer)):
                for detail in graph.get_import_details(importer=importer, imported=root):
                    hits = {n for n in imported_names(detail["line_contents"])
                            for f in forbidden if n == f or n.startswith(f + ".")}
                    if hits:
                        violations.append((importer, max(hits, key=len), detail["line_number"]))
        return ContractCheck(kept=not violations, warnings=None, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        allowed = ", ".join(sorted(str(m) for m in self.allowed_importers))  # type: ignore[attr-defined]
        output.print_error(f"Only {allowed} may import {', '.join(sorted(self.forbidden_modules))}:")  # type: ignore[arg-type]
        output.new_line()
        for importer, imported, line in check.metadata["violations"]:
            output.print_error(f"-   {importer} -> {imported} (l.{line})", bold=False)
        output.new_line()
