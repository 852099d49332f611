"""Table models' default factories answer `inspect.signature` at once (`backend.core.defaults`)."""

import inspect

from sqlmodel import SQLModel

import backend.models  # noqa: F401 - every table registered
from backend.cases.models import Case, CaseTransition
from backend.core.defaults import empty_dict, empty_list, new_id


def test_every_default_factory_of_a_table_carries_its_signature() -> None:
    """SQLModel asks pydantic, which asks `inspect.signature`, about each default factory for every row
    it builds; a factory without its own ``__signature__`` (``uuid.uuid4``, ``dict``) makes every row of
    its table slower."""
    factories = {
        f"{mapper.class_.__name__}.{name}": field.default_factory
        for mapper in SQLModel._sa_registry.mappers
        for name, field in mapper.class_.model_fields.items()
        if field.default_factory is not None
    }
    assert len(factories) > 40
    without = [name for name, factory in factories.items() if getattr(factory, "__signature__", None) is None]
    assert without == []
    assert all(inspect.signature(f).parameters == {} for f in factories.values())


def test_the_factories_make_fresh_values_for_each_row() -> None:
    assert new_id() != new_id()
    assert empty_dict() == {} and empty_dict() is not empty_dict()
    assert empty_list() == [] and empty_list() is not empty_list()
    a, b = (CaseTransition(case_id=new_id(), to_state="received", actor_role="clinician") for _ in range(2))
    assert a.id != b.id and a.at.tzinfo is not None
    case = Case(
        patient_id=new_id(), clinic_id=new_id(), created_by=new_id(), idempotency_key="k", request_hash="h"
    )
    case.history["new"] = True
    assert (
        Case(
            patient_id=new_id(),
            clinic_id=new_id(),
            created_by=new_id(),
            idempotency_key="k",
            request_hash="h",
        ).history
        == {}
    )
