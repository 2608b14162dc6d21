"""The README stays true: CI runs its test command, and every setting is documented."""

from pathlib import Path

from ovh_s3_operator.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_the_readme_test_command() -> None:
    ci_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"```sh\n{ci_command}\n```" in (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_configuration_reference() -> None:
    readme = (ROOT / "README.md").read_text()
    prefix = Settings.model_config.get("env_prefix", "")
    for name, field in Settings.model_fields.items():
        variable = field.validation_alias.choices[0] if field.validation_alias else f"{prefix}{name.upper()}"  # type: ignore[union-attr]
        assert f"| `{variable}` |" in readme, variable
