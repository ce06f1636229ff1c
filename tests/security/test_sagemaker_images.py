"""The committed SageMaker image accounts are exactly the SDK's registries for xgboost and sklearn."""

from __future__ import annotations

from stacks.components.sagemaker_images import (
    SAGEMAKER_IMAGE_ACCOUNTS,
    accounts_from_sdk,
    image_accounts,
    sdk_config_dir,
)


def test_committed_accounts_match_the_installed_sdk():
    assert accounts_from_sdk(sdk_config_dir()) == SAGEMAKER_IMAGE_ACCOUNTS


def test_every_configured_region_has_image_accounts():
    from config.loader import load_config

    for env in load_config().environments:
        assert image_accounts(env.region)


def test_unknown_region_is_an_error():
    import pytest

    with pytest.raises(ValueError, match="mars-1"):
        image_accounts("mars-1")
