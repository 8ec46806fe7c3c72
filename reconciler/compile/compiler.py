"""Compile: the config repo at one revision → one validated `NodeConfig` per node.

`load_fleet` parses fleet.xml and every class once per revision (collecting every
problem, not just the first); `compile_node` then resolves one node cheaply: its class
chain, its variable layers with provenance, its policy and its actions.
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.compile import guards, health, resolve
from reconciler.compile.checks import check_classes
from reconciler.compile.fleet import load_classes, load_doc, parse_fleet
from reconciler.compile.inventory import FLEET_FILE, Fleet, Layer
from reconciler.compile.mixins import check_mixins, check_variables, level
from reconciler.compile.nodeconfig import NodeConfig, Policy, Provenance, Variable
from reconciler.compile.suggest import did_you_mean
from reconciler.errors import ConfigError, Problem, UsageError
from reconciler.rollout import parse as rollout
from reconciler.source.snapshot import Snapshot


def load_fleet(snapshot: Snapshot) -> Fleet:
    """Parse and check fleet.xml and every class; raise ConfigError listing every problem."""
    problems: list[Problem] = []
    classes, broken = load_classes(snapshot, problems)
    fleet_doc = load_doc(snapshot, FLEET_FILE, problems)
    if fleet_doc is None:
        raise ConfigError(problems)
    if fleet_doc.root.tag != "fleet":
        problems.append(fleet_doc.problem(fleet_doc.root, "fleet.xml must have a <fleet> root"))
        raise ConfigError(problems)
    fleet = parse_fleet(snapshot, fleet_doc, classes, broken, problems)
    fleet.rollout = rollout.parse(fleet_doc, fleet, problems)
    fleet.guards = guards.parse(fleet_doc, problems)
    check_classes(fleet.classes, broken, problems)
    check_mixins(fleet.classes, broken, problems)
    for cls in fleet.classes:
        if not any(p.path == fleet.classes[cls].path for p in problems):
            check_variables(fleet, cls, problems)
            resolve.check_class(fleet, cls, problems)
    if problems:
        raise ConfigError(_unique(problems))
    return fleet


def _unique(problems: list[Problem]) -> list[Problem]:
    """The problems in order, each reported once (a shared parent can be reached twice)."""
    return list(dict.fromkeys(problems))


def compile_node(fleet: Fleet, name: str) -> NodeConfig:
    """Resolve one node: class chain, variables with provenance, policy, actions."""
    decl = fleet.nodes.get(name)
    if decl is None:
        raise UsageError.because(
            f"unknown node {name!r}: not in {FLEET_FILE} at {fleet.snapshot.label}"
            + did_you_mean(name, fleet.nodes)
        )
    node = decl.name
    chain = fleet.chain(node.cls)
    selector = (node.cls, node.product, node.cluster)
    shared = fleet._layers.get(selector)
    if shared is None:
        shared = [fleet.defaults]
        shared += [layer for c in chain for layer in level(fleet, c).layers]
        shared += [b.layer for b in sorted(fleet.blocks, key=lambda b: b.specificity)
                   if b.matches(*selector)]
        fleet._layers[selector] = shared
    layers = shared + [layer for layer in (decl.range_layer, decl.node_layer)
                       if layer is not None]
    policy_values = dict(fleet.default_policy)
    for cls in chain:
        policy_values.update(fleet.classes[cls].policy)
    policy_values.update(decl.range_policy)
    policy_values.update(decl.node_policy)
    policy = fleet._policies.get(tuple(policy_values.items()))
    if policy is None:
        policy = fleet._policies[tuple(policy_values.items())] = Policy(**policy_values)
    # Nodes of one range share their layers, and classes their tuple of actions (alive
    # in the fleet's caches, so ids are stable keys): merge and guard each once.
    merged = tuple(map(id, layers))
    variables = fleet._merged.get(merged)
    if variables is None:
        variables = fleet._merged[merged] = _merge_layers(layers, fleet._variables)
    try:
        actions = resolve.actions(fleet, node.cls, variables)
    except ConfigError as exc:
        raise ConfigError([replace(p, node=name) for p in exc.problems]) from None
    if id(actions) not in fleet._unguarded:
        refused = guards.check(fleet.guards, actions, name)
        if refused:
            raise ConfigError(refused)
        fleet._unguarded.add(id(actions))
    # Validating a config is most of a compile (each action through the union of their
    # types), and the nodes of a class share all that it checks but values of plain types
    # that are theirs by construction: the first is validated, the others copy it. The
    # chain decides the health checks, and they were checked against these actions.
    shared_key = (chain, id(actions), id(policy))
    first = fleet._configs.get(shared_key)
    if first is not None:
        return first.model_copy(update={
            "name": name, "number": node.number, "product": node.product,
            "cluster": node.cluster, "domain": node.domain, "variables": dict(variables)})
    # Each class's health checks after its mixins', as its variables and actions are.
    checks = health.merge(fleet.classes[source.cls].health
                          for cls in chain for source in level(fleet, cls).sources)
    health.check_after(name, checks, actions)
    config = fleet._configs[shared_key] = NodeConfig(
        name=name,
        cls=node.cls,
        number=node.number,
        product=node.product,
        cluster=node.cluster,
        domain=node.domain,
        class_chain=chain,
        variables=variables,
        policy=policy,
        actions=actions,
        revision=fleet.revision,
        health=checks,
    )
    return config


def _merge_layers(
    layers: list[Layer], shared: dict[tuple[str, tuple[int, ...]], Variable]
) -> dict[str, Variable]:
    """Winning value per variable with every layer that set it. Provenance records are
    built once per declaration, and `shared` (one per fleet) holds one Variable per
    distinct chain of them, so a large fleet compiles fast."""
    history: dict[str, list[Provenance]] = {}
    for layer in layers:
        for name, step in layer.provenance():
            history.setdefault(name, []).append(step)
    variables = {}
    for name, steps in sorted(history.items()):
        # The records are alive in the fleet's layers, so their ids are stable keys.
        key = (name, tuple(id(step) for step in steps))
        found = shared.get(key)
        if found is None:
            found = Variable.model_construct(
                name=name, value=steps[-1].value, set_by=steps[-1],
                overrode=tuple(steps[:-1]), secret=any(step.secret for step in steps),
            )  # fmt: skip
            shared[key] = found
        variables[name] = found
    return variables
