"""After `make package`: every function of template.yaml has the arm64 zip its CodeUri names,
holding one `bootstrap` that is an aarch64 ELF executable, so `sam deploy` uploads what was
built. Prints each function's zip size. Needs no AWS credentials."""
import sys
import zipfile
from pathlib import Path

import yaml


class TemplateLoader(yaml.SafeLoader):
    """CloudFormation's short tags (!Ref, !Sub, !GetAtt...) read as plain values."""


TemplateLoader.add_multi_constructor(
    "!", lambda loader, suffix, node: loader.construct_scalar(node)
    if isinstance(node, yaml.ScalarNode) else None)

ELF_AARCH64 = 183  # e_machine of an ELF file for ARM64

root = Path(__file__).resolve().parent.parent
template = yaml.load((root / "template.yaml").read_text(), Loader=TemplateLoader)
problems, rows = [], []
for logical_id, resource in template["Resources"].items():
    if resource.get("Type") != "AWS::Serverless::Function":
        continue
    code = resource["Properties"]["CodeUri"]
    path = root / code
    if not path.is_file():
        problems.append(f"{logical_id}: {code} is missing")
        continue
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if names != ["bootstrap"]:
            problems.append(f"{logical_id}: {code} holds {names}, not one bootstrap")
            continue
        head = archive.read("bootstrap")[:20]
    machine = int.from_bytes(head[18:20], "little")
    if head[:4] != b"\x7fELF" or machine != ELF_AARCH64:
        problems.append(f"{logical_id}: {code}'s bootstrap is not an arm64 ELF executable")
    rows.append((code, path.stat().st_size))
for code, size in sorted(rows, key=lambda row: -row[1]):
    print(f"  {size / 2**20:5.2f} MB  {code}")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"package: {len(rows)} zips match template.yaml; largest {max(s for _, s in rows) / 2**20:.2f} MB")
