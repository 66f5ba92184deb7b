"""Job settings: flags, an optional config file, and the content key every output is stored under."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from geodesic_pipeline.core import METHODS, GeodesicInputError, check_alpha, check_choice, check_positive
from geodesic_pipeline.defaults import ModelDefaults
from geodesic_pipeline.keyframes import GeodesicSettings

ODE_STEPS = 20  # DDIM steps each way (the embedded model's demo uses the same)


class SettingsError(ValueError):
    """A bad setting; the message names the flag or config key and what was expected."""


@dataclass(frozen=True)
class Settings:
    alpha: float | None = None          # density weight of the metric (None: the model's own, for_model)
    noise_level: float | None = None    # fraction of the noise schedule the paths live at (None: the model's)
    frames: int = 17                    # interpolate: points per path, keyframes included
    clip_frames: int = 17               # analyze: frames taken evenly from each clip (0: every frame)
    solver: str = "default"             # geodesic_core's BVP method
    tolerance: float = 1e-3
    max_evals: int | None = None        # cap on the solver's score evaluations per item
    sphere: bool = True
    invert_steps: int = ODE_STEPS       # DDIM steps from the images to the noise level
    decode_steps: int = ODE_STEPS       # DDIM steps from the noise level back to images
    seed: int = 0                       # torch's seed before every item
    prompt: str = ""                    # diffusers models: the text the UNet is conditioned on

    def check(self) -> Settings:
        positive = {"frames": 3, "invert_steps": 1, "decode_steps": 1}
        for name, least in positive.items():
            if getattr(self, name) < least:
                raise SettingsError(f"{flag(name)}: expected at least {least}, got {getattr(self, name)}")
        if self.clip_frames == 1 or self.clip_frames < 0:
            raise SettingsError(f"{flag('clip_frames')}: expected 0 (every frame) or at least 2, "
                                f"got {self.clip_frames}")
        if self.noise_level is not None and not 0.0 < self.noise_level <= 1.0:
            raise SettingsError(f"{flag('noise_level')}: expected a fraction in (0, 1], got {self.noise_level}")
        # The core's own rules, so a setting the solver would refuse mid-run is refused before any work.
        try:
            if self.alpha is not None:  # None: the model's own, checked where it is defined
                check_alpha(self.alpha, flag("alpha"))
            check_positive(self.tolerance, flag("tolerance"))
            check_choice(self.solver, METHODS, flag("solver"))
        except GeodesicInputError as error:
            raise SettingsError(str(error)) from error
        if self.max_evals is not None and self.max_evals < 1:
            raise SettingsError(f"{flag('max_evals')}: expected a positive budget, got {self.max_evals}")
        return self

    @property
    def geodesic(self) -> GeodesicSettings:
        """How the pipeline solves and reads out (alpha must be set: `for_model`)."""
        return GeodesicSettings(self.alpha, self.sphere, self.solver, self.tolerance, max_evals=self.max_evals)

    def for_model(self, defaults: ModelDefaults) -> Settings:
        """These settings with the model's own alpha and noise level where none was given."""
        return dataclasses.replace(self, alpha=defaults.alpha if self.alpha is None else self.alpha,
                                   noise_level=defaults.noise_level if self.noise_level is None else self.noise_level)


FIELDS = {field.name: field for field in dataclasses.fields(Settings)}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def read_config(path: Path) -> dict:
    """A TOML or JSON file of settings (keys as the flags without dashes, e.g. noise_level = 0.5)."""
    import tomllib  # Python 3.11+; only needed when a TOML config is given

    try:
        text = path.read_text()
    except OSError as error:
        raise SettingsError(f"--config: cannot read {path} ({error})") from error
    try:
        values = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise SettingsError(f"--config: {path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'} "
                            f"({error})") from error
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise SettingsError(f"--config: {path} has unknown settings {unknown}; expected some of {sorted(FIELDS)}")
    return values


# A clip's frames are not on one sphere: its efficiency is measured against the unconstrained geodesic
# between its ends (on the sphere through them that geodesic can be longer than the clip itself).
COMMAND_DEFAULTS = {"interpolate": {}, "analyze": {"sphere": False}}


def make_settings(config: dict, flags: dict, command: str = "interpolate") -> Settings:
    """Defaults (the command's own first), overridden by the config file, overridden by flags given on the
    command line (not None)."""
    given = {name: value for name, value in flags.items() if value is not None}
    values = COMMAND_DEFAULTS[command] | dict(config) | given
    for name, value in values.items():
        expected = FIELDS[name].type
        kinds = {"float": (int, float), "float | None": (int, float), "int": (int,), "bool": (bool,), "str": (str,),
                 "int | None": (int,)}[expected]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise SettingsError(f"{name}: expected {expected}, got {value!r}")
        if expected.startswith("float"):
            values[name] = float(value)
    return Settings(**values).check()


def as_dict(settings: Settings) -> dict:
    return dataclasses.asdict(settings)


def content_key(command: str, model_identity: str, input_hashes: list[str], loop: bool, settings: Settings) -> str:
    """The name an item's output is stored under: any change to the model, the input files' bytes, the
    item's shape or a setting gives a new key, so finished outputs are reused only when they still apply."""
    recipe = {"command": command, "model": model_identity, "inputs": input_hashes, "loop": loop,
              "settings": as_dict(settings)}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:24]
