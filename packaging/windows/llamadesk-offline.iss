; LlamaDesk offline edition (Inno Setup): the full bundle with the CUDA engine inside. It is larger than the 4 GB a
; single setup file may hold, so it spans disks: setup.exe plus LlamaDesk-offline-*.bin slices, kept together.
;   iscc /DVERSION=0.1.0 /DDIST=..\..\dist\full\LlamaDesk llamadesk-offline.iss
#ifndef VERSION
  #define VERSION "0.1.0"
#endif
#ifndef DIST
  #define DIST "..\..\dist\full\LlamaDesk"
#endif

[Setup]
AppId={{5B0C7E1A-3F7D-4F5E-9C1B-6A2D8E4F9B13}
AppName=LlamaDesk
AppVersion={#VERSION}
AppPublisher=LlamaDesk developers
VersionInfoVersion={#VERSION}
VersionInfoDescription=LlamaDesk offline edition installer
DefaultDirName={localappdata}\Programs\LlamaDesk
DefaultGroupName=LlamaDesk
PrivilegesRequired=lowest
OutputBaseFilename=LlamaDesk-offline-{#VERSION}-setup
SetupIconFile=..\..\build\icons\llamadesk.ico
Compression=lzma2/fast
SolidCompression=no
DiskSpanning=yes
DiskSliceSize=2100000000
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
UninstallDisplayIcon={app}\LlamaDesk.exe

[Files]
Source: "{#DIST}\*"; DestDir: "{app}"; Flags: recursesubdirs createallsubdirs ignoreversion

[Icons]
Name: "{group}\LlamaDesk"; Filename: "{app}\LlamaDesk.exe"
Name: "{group}\Uninstall LlamaDesk"; Filename: "{uninstallexe}"

[Run]
Filename: "{app}\LlamaDesk.exe"; Description: "Start LlamaDesk"; Flags: nowait postinstall skipifsilent
