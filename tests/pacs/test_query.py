"""PACS node settings, C-ECHO and C-FIND against a real Orthanc."""

from __future__ import annotations

import pytest
from conftest import MANAGER, READER, DemoStudy, node_for
from orthanc_server import OrthancServer, free_port

from core.errors import PermissionDeniedError
from core.pacs.association import LocalAE
from core.pacs.nodes import PacsError, PacsNode, add_node, get_node, list_nodes, remove_node
from core.pacs.query import FindQuery, echo, find
from core.store.store import Store

pytestmark = pytest.mark.pacs


def test_nodes_are_kept_checked_and_audited(passphrase_store: Store) -> None:
    node = PacsNode(name="main-pacs", ae_title="PACS1", host="pacs.example", port=104)
    add_node(passphrase_store, MANAGER, node)
    assert list_nodes(passphrase_store) == [node] and get_node(passphrase_store, "main-pacs") == node
    with pytest.raises(ValueError, match="exists already"):
        add_node(passphrase_store, MANAGER, node)
    add_node(passphrase_store, MANAGER, PacsNode("main-pacs", "PACS2", "pacs.example", 11112), replace=True)
    assert get_node(passphrase_store, "main-pacs").ae_title == "PACS2"
    for bad, message in (
        (PacsNode("x", "A" * 17, "h", 104), "AE title"),
        (PacsNode("x", "A", "h", 0), "port"),
        (PacsNode("x", "A", "h", 104, tls=True), "--ca"),
        (PacsNode("bad name", "A", "h", 104), "node name"),
    ):
        with pytest.raises(ValueError, match=message):
            add_node(passphrase_store, MANAGER, bad)
    with pytest.raises(PermissionDeniedError):
        add_node(passphrase_store, READER, PacsNode("y", "A", "h", 104))
    remove_node(passphrase_store, MANAGER, "main-pacs")
    with pytest.raises(PacsError, match="no PACS node named"):
        get_node(passphrase_store, "main-pacs")
    actions = [r[0] for r in passphrase_store.query("SELECT action FROM audit WHERE action LIKE 'pacs.%' ORDER BY seq")]
    assert actions == ["pacs.node_add", "pacs.node_update", "pacs.node_remove"]


def test_echo(orthanc: OrthancServer, local: LocalAE) -> None:
    assert 0 < echo(local, node_for(orthanc)) < 5000


def test_echo_errors_are_clear(orthanc: OrthancServer, local: LocalAE) -> None:
    with pytest.raises(PacsError, match="refused the association"):
        echo(local, node_for(orthanc, ae_title="WRONG"))
    with pytest.raises(PacsError, match=r"no association|cannot connect"):
        echo(local, node_for(orthanc, port=free_port(), timeout_s=2.0))


def ids(results: list[object]) -> set[str]:
    return {r.study_uid for r in results}  # type: ignore[attr-defined]


def test_find_studies_with_filters(
    passphrase_store: Store, orthanc: OrthancServer, demo_study: DemoStudy, second_study: DemoStudy, local: LocalAE
) -> None:
    node = node_for(orthanc)
    m1, m2 = demo_study.manifest, second_study.manifest
    everything = find(passphrase_store, READER, local, node, FindQuery())
    assert ids(everything.results) == {m1.study_instance_uid, m2.study_instance_uid} and not everything.truncated
    one = next(r for r in everything.results if r.study_uid == m1.study_instance_uid)
    assert (one.patient_id, one.patient_name, one.study_date) == (m1.patient_id, m1.patient_name, m1.study_date)
    assert set(one.modalities) >= {"CT", "RTSTRUCT"} and one.n_instances == len(demo_study.files)
    cases = {
        FindQuery(patient_id=m1.patient_id): {m1.study_instance_uid},
        FindQuery(patient_name=m2.patient_name.split("^")[0] + "^" + m2.patient_name.split("^")[1][:3] + "*"): {
            m2.study_instance_uid
        },
        FindQuery(modality="CT"): {m1.study_instance_uid, m2.study_instance_uid},
        FindQuery(modality="MR"): set(),
        FindQuery(date="20240101-20241231"): {m1.study_instance_uid, m2.study_instance_uid},
        FindQuery(date="20250101-"): set(),
        FindQuery(accession=one.accession): {m1.study_instance_uid},
    }
    for query, expected in cases.items():
        assert ids(find(passphrase_store, READER, local, node, query).results) == expected, query
    audit = passphrase_store.query("SELECT details FROM audit WHERE action = 'pacs.find'")
    assert len(audit) == 1 + len(cases)


def test_find_series_and_limit(
    passphrase_store: Store, orthanc: OrthancServer, demo_study: DemoStudy, local: LocalAE
) -> None:
    node = node_for(orthanc)
    m = demo_study.manifest
    series = find(passphrase_store, READER, local, node, FindQuery(level="series", patient_id=m.patient_id)).results
    by_uid = {r.series_uid: r for r in series}
    assert m.ct_series_instance_uid in by_uid and m.rtstruct_series_instance_uid in by_uid
    assert by_uid[m.ct_series_instance_uid].n_instances == m.n_ct_instances
    assert by_uid[m.ct_series_instance_uid].modalities == ("CT",)
    ct_only = find(
        passphrase_store, READER, local, node, FindQuery(level="series", study_uid=m.study_instance_uid, modality="CT")
    )
    assert [r.series_uid for r in ct_only.results] == [m.ct_series_instance_uid]
    limited = find(passphrase_store, READER, local, node, FindQuery(limit=1))
    assert len(limited.results) == 1 and limited.truncated
    with pytest.raises(ValueError, match="date must be"):
        find(passphrase_store, READER, local, node, FindQuery(date="2024"))
