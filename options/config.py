"""The run's configuration: every option's value and where it came from, read-only once resolved.

options/resolution.py makes it, once, from the command line (docs/architecture.md); everything after
reads it. A setting that differs for one purpose (test.py's one ordered pass, the validation split, an
upload in app.py) is a new configuration made with derive(), never a change to this one.
"""

# Where a value came from, most binding first: a typed flag wins over the checkpoint's saved architecture
# and the resume file, which win over what the data says (its channel counts), which wins over --recipe,
# which wins over the demo settings, which win over the defaults. 'command' is a value the command itself fixes (test.py's ordered pass); 'derived' one computed
# from the others (the device, the seed, --suffix's name).
SOURCES = ('typed', 'command', 'saved', 'resume', 'data', 'recipe', 'demo', 'default', 'derived')


class Config:
    """Options as attributes (opt.netG), as argparse gives them, but read-only: assigning raises."""
    __slots__ = ('__dict__', '_sources', '_defaults')

    def __init__(self, values, sources, defaults=None):
        self.__dict__.update(values)
        object.__setattr__(self, '_sources', dict(sources))
        object.__setattr__(self, '_defaults', dict(defaults or {}))

    def __setattr__(self, key, value):
        raise AttributeError(f'the configuration is read-only once resolved: opt.{key} cannot be set here. '
                             f'Resolve it in options/resolution.py, or make a new one with opt.derive({key}=...)')

    def __delattr__(self, key):
        raise AttributeError(f'the configuration is read-only once resolved: opt.{key} cannot be deleted')

    def __reduce__(self):  # DataLoader workers started by spawn receive the datasets' configuration pickled
        return Config, (vars(self), self._sources, self._defaults)

    def __repr__(self):
        return f'Config({", ".join(f"{k}={v!r}" for k, v in sorted(vars(self).items()))})'

    def source(self, key):
        """Where the value of key came from (one of SOURCES)."""
        return self._sources[key]

    def default(self, key):
        """The parser's default of key (the plug-ins' included), None for a value no flag sets."""
        return self._defaults.get(key)

    def is_typed(self, key):
        return self._sources.get(key) == 'typed'

    def sources(self):
        return dict(self._sources)

    def derive(self, source='command', **changes):
        """A new configuration: this one with changes, recorded as coming from source."""
        return Config({**vars(self), **changes}, {**self._sources, **{key: source for key in changes}}, self._defaults)
