from services.triage.app import create_app
from services.triage.settings import TriageSettings
from services.runtime.serve import serve

settings = TriageSettings()
serve(create_app(settings), settings)
