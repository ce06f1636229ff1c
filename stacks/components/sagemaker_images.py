"""The AWS accounts that host SageMaker's framework images (xgboost, sklearn), per region.

Pulls of ``sagemaker-*`` repositories are pinned to these accounts (the boundary, and the execution
roles' image statements), instead of ``*``: anyone can create a ``sagemaker-xgboost`` repository in
their own account. Committed as data so stacks and Lambdas need not import the SageMaker SDK;
``tests/security/test_sagemaker_images.py`` checks it equals the ``registries`` of the SDK's
``sagemaker/core/image_uri_config/{xgboost,sklearn}.json`` (every version, training and inference):
after an SDK upgrade, regenerate with ``python -m stacks.components.sagemaker_images``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

#: The SDK image-config files whose registries are pinned.
FRAMEWORKS: Final = ("xgboost", "sklearn")

#: region -> the accounts whose ``sagemaker-*`` repositories hold the frameworks' images.
SAGEMAKER_IMAGE_ACCOUNTS: Final[dict[str, tuple[str, ...]]] = {
    "af-south-1": ("455444449433", "510948584623"),
    "ap-east-1": ("286214385809", "651117190479"),
    "ap-northeast-1": ("354813040037", "501404015308"),
    "ap-northeast-2": ("306986355934", "366743142698"),
    "ap-northeast-3": ("867004704886",),
    "ap-south-1": ("720646828776", "991648021394"),
    "ap-south-2": ("628508329040",),
    "ap-southeast-1": ("121021644041", "475088953585"),
    "ap-southeast-2": ("544295431143", "783357654285"),
    "ap-southeast-3": ("951798379941",),
    "ap-southeast-4": ("106583098589",),
    "ca-central-1": ("341280168497", "469771592824"),
    "ca-west-1": ("190319476487",),
    "cn-north-1": ("390948362332", "450853457545"),
    "cn-northwest-1": ("387376663083", "451049120500"),
    "eu-central-1": ("492215442770", "813361260812"),
    "eu-central-2": ("680994064768",),
    "eu-north-1": ("662702820516", "669576153137"),
    "eu-south-1": ("257386234256", "978288397137"),
    "eu-south-2": ("104374241257",),
    "eu-west-1": ("141502667606", "685385470294"),
    "eu-west-2": ("644912444149", "764974769150"),
    "eu-west-3": ("659782779980", "749696950732"),
    "il-central-1": ("898809789911",),
    "me-central-1": ("272398656194",),
    "me-south-1": ("249704162688", "801668240914"),
    "sa-east-1": ("737474898029", "855470959533"),
    "us-east-1": ("683313688378", "811284229777"),
    "us-east-2": ("257758044811", "825641698319"),
    "us-gov-east-1": ("237065988967",),
    "us-gov-west-1": ("226302683700", "414596584902"),
    "us-iso-east-1": ("490574956308", "833128469047"),
    "us-isob-east-1": ("281123927165", "765400339828"),
    "us-isof-east-1": ("108575199400",),
    "us-isof-south-1": ("124985052026",),
    "us-west-1": ("632365934929", "746614075791"),
    "us-west-2": ("246618743249", "433757028032"),
}


def image_accounts(region: str) -> tuple[str, ...]:
    """The image accounts of ``region``; a region without SageMaker images is an error at synth."""
    try:
        return SAGEMAKER_IMAGE_ACCOUNTS[region]
    except KeyError:
        raise ValueError(f"no SageMaker framework image accounts known for region {region!r}") from None


def accounts_from_sdk(config_dir: Path) -> dict[str, tuple[str, ...]]:
    """Every ``registries`` entry of the frameworks' image-config files in ``config_dir``, by region."""
    found: dict[str, set[str]] = {}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for region, account in node.get("registries", {}).items():
                found.setdefault(region, set()).add(account)
            for value in node.values():
                walk(value)

    for framework in FRAMEWORKS:
        walk(json.loads((config_dir / f"{framework}.json").read_text(encoding="utf-8")))
    return {region: tuple(sorted(accounts)) for region, accounts in sorted(found.items())}


def sdk_config_dir() -> Path:
    """Where the installed SageMaker SDK keeps its image-config files."""
    import sagemaker.core

    return Path(sagemaker.core.__file__).parent / "image_uri_config"


if __name__ == "__main__":  # print the mapping for the installed SDK (to paste above)
    print(json.dumps(accounts_from_sdk(sdk_config_dir()), indent=4))
