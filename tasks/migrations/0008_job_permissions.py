"""Custom Job permissions, and the "queue operators" group holding the operating ones.

Permissions are normally created after all migrations (post_migrate); the
group needs them now, so they are created here by codename. The values are
spelled out (not imported) so this migration keeps meaning what it meant.
"""

from django.db import migrations

GROUP = "queue operators"
OPERATOR_PERMISSIONS = {
    "view_job": "Can view job",
    "operate_job": "Can retry, promote and cancel jobs and pause or resume queues",
    "remove_job": "Can remove jobs and clean queues",
}


def create_operators_group(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    job_type, _ = ContentType.objects.get_or_create(app_label="tasks", model="job")
    permissions = [
        Permission.objects.get_or_create(content_type=job_type, codename=codename,
                                         defaults={"name": name})[0]
        for codename, name in OPERATOR_PERMISSIONS.items()
    ]
    group, _ = Group.objects.get_or_create(name=GROUP)
    group.permissions.add(*permissions)


def remove_operators_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("tasks", "0007_repeat_limit"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="job",
            options={
                "permissions": (
                    ("enqueue_job", "Can enqueue jobs through the HTTP API"),
                    ("operate_job",
                     "Can retry, promote and cancel jobs and pause or resume queues"),
                    ("remove_job", "Can remove jobs and clean queues"),
                )
            },
        ),
        migrations.RunPython(create_operators_group, remove_operators_group),
    ]
