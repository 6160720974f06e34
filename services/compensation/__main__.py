from services.compensation.app import create_app
from services.compensation.settings import CompensationSettings
from services.runtime.serve import serve

settings = CompensationSettings()
serve(create_app(settings), settings)
