from services.followup.app import create_app
from services.followup.settings import FollowupSettings
from services.runtime.serve import serve

settings = FollowupSettings()
serve(create_app(settings), settings)
