"""Stacks: templates, per-kind overrides, the merge, names and Compose export.

Pure domain code: the stacks service stores templates, instances and overrides (one row
per override kind) and calls these functions; nothing here touches the store, Docker or
the network. The merge rules are written down in ``docs/stacks.md``.
"""

from snoozeql.domain.stacks.clashes import PortClash, find_port_clashes, raise_on_clashes
from snoozeql.domain.stacks.compose import ComposeExport, ExportedFile, to_compose
from snoozeql.domain.stacks.entries import (
    ConfigFile,
    EnvVar,
    Healthcheck,
    Label,
    PortMapping,
    VolumeMount,
)
from snoozeql.domain.stacks.merge import EffectiveService, Provenance, effective
from snoozeql.domain.stacks.names import (
    DEFAULT_PREFIX,
    RESERVED_NAMES,
    container_name,
    suggest_name,
    validate_instance_name,
    validate_stack_name,
)
from snoozeql.domain.stacks.overrides import (
    MergeMode,
    Override,
    OverrideKind,
    override_count,
    parse_override,
)
from snoozeql.domain.stacks.templates import (
    Template,
    load_builtin_templates,
    parse_template_yaml,
)

__all__ = [
    "DEFAULT_PREFIX",
    "RESERVED_NAMES",
    "ComposeExport",
    "ConfigFile",
    "EffectiveService",
    "EnvVar",
    "ExportedFile",
    "Healthcheck",
    "Label",
    "MergeMode",
    "Override",
    "OverrideKind",
    "PortClash",
    "PortMapping",
    "Provenance",
    "Template",
    "VolumeMount",
    "container_name",
    "effective",
    "find_port_clashes",
    "load_builtin_templates",
    "override_count",
    "parse_override",
    "parse_template_yaml",
    "raise_on_clashes",
    "suggest_name",
    "to_compose",
    "validate_instance_name",
    "validate_stack_name",
]
