from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from services.runtime.serve import serve

settings = IntakeSettings()
serve(create_app(settings), settings)
