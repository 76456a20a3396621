# dmgbuild settings for LlamaDesk's disk image: the app and a link to /Applications, side by side.
# dmgbuild -s packaging/macos/dmg_settings.py -D app=dist/thin/LlamaDesk.app "LlamaDesk" dist/LlamaDesk.dmg
import os.path

application = defines.get("app", "dist/thin/LlamaDesk.app")  # noqa: F821 - dmgbuild provides `defines`
appname = os.path.basename(application)

format = "UDZO"
size = None
files = [application]
symlinks = {"Applications": "/Applications"}
icon_locations = {appname: (140, 120), "Applications": (500, 120)}
window_rect = ((100, 100), (640, 300))
default_view = "icon-view"
icon_size = 96
