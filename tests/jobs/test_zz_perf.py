import time, json
import pytest
from django.db import connection, transaction
from django.db.models.base import ModelState
from django.utils import timezone
from jobs.validation import JobValidator
from jobs.models import Job, Event
from config.ids import new_ids
pytestmark = pytest.mark.django_db(transaction=True)
def test_perf(workspace, queue, plans):
    jobs = [{"payload": {"user_id": i, "email": f"u{i}@example.com", "template": "welcome"}, "name": "send", "tags": ["campaign:q2"], "priority": i % 5} for i in range(1000)]
    specs = JobValidator(workspace=workspace, queue=queue).validate_many(jobs)
    fields = Job._meta.concrete_fields
    cols = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    json_attrs = {f.attname for f in fields if f.get_internal_type() == "JSONField"}
    now = timezone.now()
    proto = Job(id="x", workspace_id=workspace.id, queue_id=queue.id, run_at=now, created_at=now, updated_at=now).__dict__
    proto = {k: v for k, v in proto.items() if k != "_state"}
    for _ in range(4):
        with transaction.atomic():
            t1=time.perf_counter()
            objs=[]
            for i, s in zip(new_ids("job",1000), specs):
                o = Job.__new__(Job); d = dict(proto); d.update(id=i, name=s.name, payload=s.payload, tags=s.tags, priority=s.priority); o.__dict__ = d; o._state = ModelState(); o._state.adding=False; o._state.db="default"
                objs.append(o)
            t2=time.perf_counter()
            attnames = [f.attname for f in fields]
            dumps = json.dumps
            def esc(v, a):
                if v is None: return "\\N"
                if a in json_attrs: v = dumps(v)
                elif v is True: return "t"
                elif v is False: return "f"
                elif isinstance(v, str): pass
                elif hasattr(v, "isoformat"): return v.isoformat()
                else: return str(v)
                return v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
            lines = []
            for o in objs:
                d = o.__dict__
                lines.append("\t".join([esc(d[a], a) for a in attnames]))
            data = ("\n".join(lines) + "\n").encode()
            tx=time.perf_counter()
            with connection.cursor() as cur:
                with cur.cursor.copy(f"COPY jobs_job ({cols}) FROM STDIN") as copy:
                    copy.write(data)
            print("build %.1f" % ((tx-t2)*1000))
            t3=time.perf_counter()
        t5=time.perf_counter()
        print("\nconstruct %.1f copy %.1f commit %.1f" % tuple((b-a)*1000 for a,b in [(t1,t2),(t2,t3),(t3,t5)]))
    assert Job.objects.count() == 4000
    print(Job.objects.first().payload, Job.objects.first().tags)
