import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("checks", "0002_result_recorded_at"),
        ("releases", "0007_ascii_versions"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="pipelinetoken",
            name="version_pattern",
            field=models.CharField(
                blank=True,
                max_length=64,
                validators=[
                    django.core.validators.RegexValidator(
                        "^[!-~]+$", "Use printable ASCII characters without spaces, e.g. * or v2.*."
                    )
                ],
                verbose_name="releases",
            ),
        ),
        migrations.AlterField(
            model_name="pipelinetoken",
            name="release",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="pipeline_tokens",
                to="releases.release",
            ),
        ),
        migrations.AddConstraint(
            model_name="pipelinetoken",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("release__isnull", False), ("version_pattern", "")),
                    models.Q(
                        ("release__isnull", True), models.Q(("version_pattern", ""), _negated=True)
                    ),
                    _connector="OR",
                ),
                name="token_for_a_release_or_a_pattern",
            ),
        ),
        migrations.AddConstraint(
            model_name="pipelinetoken",
            constraint=models.UniqueConstraint(
                condition=models.Q(("release__isnull", True), ("revoked_at__isnull", True)),
                fields=("label",),
                name="one_active_project_token_label",
            ),
        ),
    ]
