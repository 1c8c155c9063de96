"""Importing an uploaded file from the imports page, in the worker."""

import datetime
import importlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.tasks import TaskResultStatus
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from audit.models import AuditEvent
from imports import uploads
from imports.models import ImportRun
from imports.tasks import import_upload
from patients import roles
from patients.models import Patient
from tests.conftest import PASSWORD
from tests.import_files import patient, practitioner
from tests.worker import queued_tasks, run_worker

pytestmark = pytest.mark.django_db

PERMISSION = "imports.run_import"


def _ndjson(resources) -> bytes:
    return ("\n".join(json.dumps(r) for r in resources) + "\n").encode()


def _patients(count, prefix="pt"):
    return [
        patient(id=f"{prefix}{n}", family=f"Family{n}", given=(f"Given{n}",))
        for n in range(count)
    ]


def _member(role, username):
    user = get_user_model().objects.create_user(
        username=username, password=PASSWORD, is_staff=True
    )
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def upload_dir(settings, tmp_path):
    folder = tmp_path / "uploads"
    settings.IMPORT_UPLOAD_DIR = folder
    return folder


@pytest.fixture
def administrator(db):
    return _member(roles.ADMINISTRATOR, "office-admin")


@pytest.fixture
def admin_client(client, administrator, upload_dir):
    client.force_login(administrator)
    return client


def _upload(client, name, content, **fields):
    file = SimpleUploadedFile(name, content, content_type="application/octet-stream")
    return client.post(reverse("import-new"), {"file": file, **fields})


def _files_in(folder):
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def _rejection_events():
    return AuditEvent.objects.filter(
        action=AuditEvent.Action.IMPORT_UPLOAD, outcome=AuditEvent.Outcome.FAILURE
    )


# --- Who may import ---


def test_only_administrator_role_may_import(db):
    administrator = _member(roles.ADMINISTRATOR, "a")
    front_desk = _member(roles.FRONT_DESK, "f")
    read_only = _member(roles.READ_ONLY, "r")

    assert administrator.has_perm(PERMISSION)
    assert not front_desk.has_perm(PERMISSION)
    assert not read_only.has_perm(PERMISSION)


def test_earlier_administrator_role_gets_permission(db):
    group = Group.objects.get(name=roles.ADMINISTRATOR)
    group.permissions.remove(Permission.objects.get(codename="run_import"))
    migration = importlib.import_module("imports.migrations.0003_grant_run_import")

    from django.apps import apps

    migration.grant_to_existing_administrators(apps, None)

    codes = set(group.permissions.values_list("codename", flat=True))
    assert "run_import" in codes


def test_nav_links_imports_with_permission(admin_client):
    page = admin_client.get(reverse("onboarding")).content.decode()

    assert f'href="{reverse("import-list")}"' in page


def test_nav_hides_imports_without_permission(front_desk_client):
    page = front_desk_client.get(reverse("onboarding")).content.decode()

    assert reverse("import-list") not in page


@pytest.mark.parametrize("url_name", ["import-list", "import-new"])
def test_pages_refused_without_permission(front_desk_client, url_name):
    response = front_desk_client.get(reverse(url_name))

    assert response.status_code == 403
    denied = AuditEvent.objects.get(action=AuditEvent.Action.DENIED)
    assert denied.detail["permission"] == PERMISSION


def test_upload_refused_without_permission(front_desk_client, upload_dir):
    response = _upload(front_desk_client, "Patient.ndjson", _ndjson(_patients(1)))

    assert response.status_code == 403
    assert ImportRun.objects.count() == 0
    assert _files_in(upload_dir) == []


def test_run_pages_refused_without_permission(front_desk_client, administrator):
    run = ImportRun.objects.create(started_at="2026-01-01T00:00Z", source="fhir")

    for name in ("import-run", "import-run-progress"):
        response = front_desk_client.get(reverse(name, args=[run.pk]))
        assert response.status_code == 403


def test_anonymous_sent_to_login(client, upload_dir):
    response = _upload(client, "Patient.ndjson", _ndjson(_patients(1)))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("staff-login"))
    assert _files_in(upload_dir) == []


def test_unknown_run_not_found(admin_client):
    assert admin_client.get(reverse("import-run", args=[999])).status_code == 404


def test_upload_needs_csrf_token(administrator, upload_dir):
    client = Client(enforce_csrf_checks=True)
    client.force_login(administrator)

    response = _upload(client, "Patient.ndjson", _ndjson(_patients(1)))

    assert response.status_code == 403
    assert ImportRun.objects.count() == 0
    assert _files_in(upload_dir) == []


# --- Uploading ---


def test_upload_queues_run(admin_client, administrator, upload_dir):
    content = _ndjson(_patients(3))

    response = _upload(admin_client, "Patient.ndjson", content)

    run = ImportRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("import-run", args=[run.pk])
    assert run.status == ImportRun.Status.QUEUED
    assert run.started_by == administrator
    assert run.upload_name == "Patient.ndjson"
    assert run.bytes_total == len(content)
    kept = upload_dir / run.upload_path.rsplit("/", 1)[-1]
    assert str(kept) == run.upload_path
    assert kept.read_bytes() == content
    assert _files_in(upload_dir) == [kept.name]
    assert queued_tasks(import_upload).count() == 1


def test_upload_is_audited(admin_client, administrator):
    _upload(admin_client, "Patient.ndjson", _ndjson(_patients(2)))

    run = ImportRun.objects.get()
    event = AuditEvent.objects.get(action=AuditEvent.Action.IMPORT_UPLOAD)
    assert event.actor == administrator
    assert event.outcome == AuditEvent.Outcome.SUCCESS
    assert event.detail["import_run"] == run.pk
    assert event.detail["file"] == "Patient.ndjson"


def test_upload_folder_is_private(admin_client, upload_dir):
    _upload(admin_client, "Patient.ndjson", _ndjson(_patients(1)))

    assert upload_dir.stat().st_mode & 0o077 == 0
    kept = next(upload_dir.iterdir())
    assert kept.stat().st_mode & 0o077 == 0


def test_queued_run_page_waits_for_worker(admin_client):
    _upload(admin_client, "Patient.ndjson", _ndjson(_patients(1)))
    run = ImportRun.objects.get()

    page = admin_client.get(reverse("import-run", args=[run.pk])).content.decode()

    assert "Waiting to start" in page
    assert "Waiting for the background worker" in page
    assert reverse("import-run-progress", args=[run.pk]) in page
    assert "import_progress.js" in page


# --- The worker's import ---


def test_worker_imports_upload(admin_client, administrator, upload_dir):
    _upload(admin_client, "Patient.ndjson", _ndjson(_patients(4)))

    run_worker()

    run = ImportRun.objects.get()
    assert run.status == ImportRun.Status.FINISHED
    assert Patient.objects.count() == 4
    assert run.summary["patients"]["created"] == 4
    assert run.records_done == 4
    assert run.bytes_done == run.bytes_total > 0
    imported = AuditEvent.objects.get(action=AuditEvent.Action.IMPORT)
    assert imported.actor == administrator
    assert imported.detail["import_run"] == run.pk
    task = DBTaskResult.objects.get(task_path=import_upload.module_path)
    assert task.status == TaskResultStatus.SUCCESSFUL


def test_file_deleted_after_import(admin_client, upload_dir):
    _upload(admin_client, "Patient.ndjson", _ndjson(_patients(2)))
    kept = ImportRun.objects.get().upload_path

    run_worker()

    run = ImportRun.objects.get()
    assert run.upload_path == ""
    assert _files_in(upload_dir) == []
    assert kept


def test_finished_page_shows_summary(admin_client):
    content = _ndjson(_patients(2)) + b"{broken\n"
    _upload(admin_client, "Patient.ndjson", content)
    run_worker()
    run = ImportRun.objects.get()

    page = admin_client.get(reverse("import-run", args=[run.pk])).content.decode()

    assert "Finished" in page
    assert 'id="summary-patients">2 created, 0 updated, 0 unchanged' in page
    assert 'id="summary-skipped">1<' in page
    assert "Patient.ndjson, line 3" in page
    assert "invalid JSON" in page
    assert str(run.upload_path or "uploads") not in page
    assert "import_progress.js" not in page


def test_progress_fields_advance_in_worker(admin_client, settings, monkeypatch):
    settings.IMPORT_PROGRESS_SECONDS = 0
    _upload(admin_client, "Patient.ndjson", _ndjson(_patients(60)))
    run = ImportRun.objects.get()
    stored = []

    from imports import services

    original = services._ProgressRecorder.__call__

    def watch(recorder, progress):
        original(recorder, progress)
        stored.append(
            ImportRun.objects.values_list("status", "bytes_done", "records_done").get(
                pk=run.pk
            )
        )

    monkeypatch.setattr(services._ProgressRecorder, "__call__", watch)

    run_worker()

    in_between = [
        (done, records)
        for status, done, records in stored
        if status == ImportRun.Status.RUNNING and 0 < done < run.bytes_total
    ]
    assert len(in_between) > 10
    assert in_between == sorted(in_between)
    assert in_between[-1][1] > in_between[0][1]


def test_progress_endpoint_returns_counts(admin_client):
    _upload(admin_client, "Patient.ndjson", _ndjson(_patients(3)))
    run = ImportRun.objects.get()
    url = reverse("import-run-progress", args=[run.pk])

    queued = admin_client.get(url).json()
    run_worker()
    finished = admin_client.get(url).json()

    assert queued["status"] == "queued"
    assert queued["done"] is False
    assert queued["bytes_total"] == run.bytes_total
    assert finished["status"] == "finished"
    assert finished["done"] is True
    assert finished["percent"] == 100
    assert finished["records_done"] == 3
    assert finished["patients_done"] == 3


def test_two_uploads_at_once(admin_client, upload_dir):
    _upload(admin_client, "first.ndjson", _ndjson(_patients(3, prefix="a")))
    _upload(admin_client, "second.ndjson", _ndjson(_patients(2, prefix="b")))

    run_worker()

    runs = ImportRun.objects.order_by("pk")
    assert [r.status for r in runs] == [ImportRun.Status.FINISHED] * 2
    assert [r.summary["patients"]["created"] for r in runs] == [3, 2]
    assert Patient.objects.count() == 5
    assert _files_in(upload_dir) == []


def test_source_name_is_used(admin_client):
    _upload(admin_client, "Patient.ndjson", _ndjson(_patients(1)), source="ehr-a")

    run_worker()

    assert Patient.objects.get().source == "ehr-a"
    assert ImportRun.objects.get().source == "ehr-a"


def test_zip_of_ndjson_imported(admin_client, upload_dir):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("export/Practitioner.ndjson", _ndjson([practitioner()]))
        gp = {"generalPractitioner": [{"reference": "Practitioner/dr1"}]}
        archive.writestr(
            "export/Patient.ndjson",
            _ndjson([patient(id="p1", **gp), {"resourceType": "Patient"}]),
        )
        archive.writestr("__MACOSX/export/._Patient.ndjson", b"\x00\x01")
    _upload(admin_client, "export.zip", buffer.getvalue())

    run_worker()

    run = ImportRun.objects.get()
    assert run.status == ImportRun.Status.FINISHED
    assert Patient.objects.get().primary_provider.npi == "1234567890"
    skipped = run.summary["skipped_records"]
    assert skipped[0]["file"] == "export.zip: export/Patient.ndjson"
    assert _files_in(upload_dir) == []


# --- Files that cannot be imported ---


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("patients.xlsx", b"PK\x03\x04", "patients.xlsx is an Excel workbook"),
        ("notes.docx", b"text", "notes.docx is not a file the import can read"),
        ("patients.csv", b"PK\x03\x04rest", "patients.csv is a zip archive"),
        ("Patient.ndjson", b"%PDF-1.7", "Patient.ndjson is a PDF document"),
        ("Patient.ndjson", "{}".encode("utf-16"), "Patient.ndjson is not a text"),
        ("Patient.ndjson", b"", "Patient.ndjson is empty"),
        ("export.zip", b"not a zip", "export.zip is not a valid .zip file"),
    ],
)
def test_wrong_file_rejected(admin_client, upload_dir, name, content, expected):
    response = _upload(admin_client, name, content)

    assert response.status_code == 400
    page = response.content.decode()
    assert expected in page
    assert ImportRun.objects.count() == 0
    assert _files_in(upload_dir) == []
    event = _rejection_events().get()
    assert event.detail["file"] == name
    assert expected in event.detail["reason"]


def test_spreadsheet_rejection_says_what_to_do(admin_client):
    page = _upload(admin_client, "patients.xlsx", b"PK\x03\x04").content.decode()

    assert "save it as CSV UTF-8 (.csv) and upload that file" in page


def test_zip_with_other_files_rejected(admin_client, upload_dir):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Patient.ndjson", _ndjson(_patients(1)))
        archive.writestr("readme.pdf", b"%PDF")
    response = _upload(admin_client, "export.zip", buffer.getvalue())

    assert response.status_code == 400
    assert "export.zip contains files other than .ndjson: readme.pdf" in (
        response.content.decode()
    )
    assert _files_in(upload_dir) == []


def test_too_large_file_rejected(admin_client, settings, upload_dir):
    settings.IMPORT_UPLOAD_MAX_MB = 1
    content = _ndjson(_patients(8000))
    assert len(content) > 1024 * 1024

    response = _upload(admin_client, "Patient.ndjson", content)

    assert response.status_code == 400
    page = response.content.decode()
    assert "Patient.ndjson is larger than 1.0\xa0MB" in page
    assert ImportRun.objects.count() == 0
    assert _files_in(upload_dir) == []
    assert _rejection_events().get().detail["file"] == "Patient.ndjson"


def test_no_file_chosen(admin_client):
    response = admin_client.post(reverse("import-new"), {"source": ""})

    assert response.status_code == 400
    assert "Choose the export file to upload." in response.content.decode()
    assert _rejection_events().count() == 0


def test_bad_file_fails_in_words(admin_client, upload_dir):
    _upload(admin_client, "bundle.json", b"{not json")

    run_worker()

    run = ImportRun.objects.get()
    assert run.status == ImportRun.Status.FAILED
    assert run.error.startswith("Nothing was imported. bundle.json: invalid JSON")
    assert str(upload_dir) not in run.error
    page = admin_client.get(reverse("import-run", args=[run.pk])).content.decode()
    assert "The import failed" in page
    assert "Nothing was imported. bundle.json: invalid JSON at line 1" in page
    assert _files_in(upload_dir) == []
    failed = AuditEvent.objects.get(action=AuditEvent.Action.IMPORT)
    assert failed.detail["files_not_imported"] == 1


def test_missing_file_fails_in_words(admin_client, upload_dir):
    _upload(admin_client, "Patient.ndjson", _ndjson(_patients(1)))
    for path in upload_dir.iterdir():
        path.unlink()

    run_worker()

    run = ImportRun.objects.get()
    assert run.status == ImportRun.Status.FAILED
    assert "could not read Patient.ndjson" in run.error
    assert "Upload it again" in run.error
    task = DBTaskResult.objects.get(task_path=import_upload.module_path)
    assert task.status == TaskResultStatus.FAILED


def test_run_is_not_imported_twice(admin_client):
    _upload(admin_client, "Patient.ndjson", _ndjson(_patients(1)))
    run = ImportRun.objects.get()
    run_worker()

    result = import_upload.call(run.pk)

    assert result == {}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.IMPORT).count() == 1


# --- The list ---


def test_list_shows_recent_runs(admin_client, administrator):
    _upload(admin_client, "Patient.ndjson", _ndjson(_patients(2)))
    run_worker()
    run = ImportRun.objects.get()

    page = admin_client.get(reverse("import-list")).content.decode()

    assert reverse("import-run", args=[run.pk]) in page
    assert "Patient.ndjson" in page
    assert administrator.username in page
    assert "Finished" in page


# --- Configuration ---


def test_check_rejects_upload_dir_under_static(settings):
    from imports.checks import upload_dir_not_served

    settings.IMPORT_UPLOAD_DIR = settings.STATICFILES_DIRS[0] / "uploads"
    errors = upload_dir_not_served(None)

    assert [error.id for error in errors] == ["imports.E001"]
    assert "IMPORT_UPLOAD_DIR" in errors[0].msg


def test_check_accepts_default_upload_dir(settings):
    from imports.checks import upload_dir_not_served

    settings.IMPORT_UPLOAD_DIR = settings.BASE_DIR / "var" / "import-uploads"

    assert upload_dir_not_served(None) == []


# --- A worker that stops during an import ---


def _stalled_upload(admin_client, name, content, **run_fields):
    """Upload a file and leave its run as a killed worker would."""
    _upload(admin_client, name, content)
    DBTaskResult.objects.update(status=TaskResultStatus.RUNNING)
    ImportRun.objects.update(**run_fields)
    return ImportRun.objects.get()


def test_sweep_requeues_import_whose_worker_stopped(admin_client, upload_dir):
    long_ago = timezone.now() - datetime.timedelta(minutes=10)
    run = _stalled_upload(
        admin_client,
        "Patient.ndjson",
        _ndjson(_patients(3)),
        status=ImportRun.Status.RUNNING,
        started_at=long_ago,
        progress_at=long_ago,
    )

    assert uploads.requeue_stalled() == 1
    assert uploads.requeue_stalled() == 0
    run_worker()

    run.refresh_from_db()
    assert run.status == ImportRun.Status.FINISHED
    assert Patient.objects.count() == 3
    assert _files_in(upload_dir) == []


def test_sweep_leaves_import_with_recent_progress(admin_client, upload_dir):
    _stalled_upload(
        admin_client,
        "Patient.ndjson",
        _ndjson(_patients(3)),
        status=ImportRun.Status.RUNNING,
        progress_at=timezone.now(),
    )

    assert uploads.requeue_stalled() == 0


def test_sweep_requeues_queued_import_without_task(admin_client, upload_dir):
    _stalled_upload(
        admin_client,
        "Patient.ndjson",
        _ndjson(_patients(2)),
        started_at=timezone.now() - datetime.timedelta(minutes=30),
    )

    assert uploads.requeue_stalled() == 1
    run_worker()

    assert ImportRun.objects.get().status == ImportRun.Status.FINISHED
    assert Patient.objects.count() == 2


def test_requeued_zip_import_unpacks_again(admin_client, upload_dir):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Patient.ndjson", _ndjson(_patients(2)))
    long_ago = timezone.now() - datetime.timedelta(minutes=10)
    run = _stalled_upload(
        admin_client,
        "export.zip",
        buffer.getvalue(),
        status=ImportRun.Status.RUNNING,
        started_at=long_ago,
    )
    # The killed attempt had unpacked part of the archive.
    unpacked = Path(run.upload_path + ".unpacked")
    unpacked.mkdir()
    (unpacked / "Patient.ndjson").write_bytes(b"{half")

    uploads.requeue_stalled()
    run_worker()

    run.refresh_from_db()
    assert run.status == ImportRun.Status.FINISHED
    assert Patient.objects.count() == 2
    assert not unpacked.exists()
