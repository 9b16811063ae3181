"""The pipeline API: what CI and deploy jobs ask and report, under /api/, with a pipeline
token (`Authorization: Bearer <token>`) that staff make on the token pages of `checks`.

Each area has a module of endpoints (`releases.py`: go-no-go, evidence) and every
endpoint is one function on the same pattern; `auth.py` and `endpoint.py` hold what they
share. To add one, say `POST /api/releases/<version>/deploy`:

    @endpoint("POST")
    def deploy(request: HttpRequest, version: str) -> JsonResponse:
        token, release = authenticate(request, version)
        data = json_object(request)
        ...  # check data's fields, raising ApiError(400, _("…")) for a bad one
        with acting(token, request) as by:
            done = workflow.some_operation(release, by=by, ...)
        return JsonResponse({...})

then route it in `urls.py` (its name is reversed as "api:deploy") and test it in
tests/api/. What comes with that:

- `endpoint(method)` answers that method only (405 otherwise, with `Allow`) and takes no
  CSRF token, since the bearer token, never a cookie, authenticates (one that also takes
  a person's session, as go-no-go does, must be a GET). Any ApiError raised inside, and
  the 405, becomes the answer: its status, `{"error": message}` and `Cache-Control:
  no-store`. Every message is translated (gettext, with its Spanish in locale/) and
  answered in the caller's language.
- `authenticate` refuses a missing token (401 asking for one), an unknown, revoked or
  foreign one and an unknown release alike (one 401), throttles the token
  (`PIPELINE_REQUESTS_PER_MINUTE`, 429 with Retry-After) and records its use.
- `json_object` reads the body: 413 over DATA_UPLOAD_MAX_MEMORY_SIZE, 400 unless a JSON
  object; an integer longer than any id is read as no valid value.
- `text_field`, `choice_field` and `link_field` read a field: a missing or malformed one
  is a 400; a link the board would not take as evidence (workflow.checked_link) is a
  422, on every endpoint alike, since the JSON is well formed and a rule refuses it.
- `acting` gives the workflow the actor to act as: the token's role, audited as
  `ci:LABEL`, with the caller's address. Inside it nothing is written unless all of it
  holds: the policy's refusal answers 403, the workflow's 422, and a token revoked
  meanwhile takes the change back with it (401).
"""
