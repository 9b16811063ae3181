from django.db import migrations, models
from django.db.models import F


def mark_finished_results_recorded(apps, schema_editor):
    # Until now a result reached its items in the transaction that finished it.
    CheckResult = apps.get_model("checks", "CheckResult")
    CheckResult.objects.filter(state="done").update(recorded_at=F("finished_at"))


class Migration(migrations.Migration):
    dependencies = [("checks", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="checkresult",
            name="recorded_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(mark_finished_results_recorded, migrations.RunPython.noop),
    ]
