from services.runtime.serve import serve
from services.triage.app import create_app
from services.triage.settings import TriageSettings

settings = TriageSettings()
serve(create_app(settings), settings)
