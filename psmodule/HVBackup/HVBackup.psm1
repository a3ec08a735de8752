# HVBackup PowerShell module: cmdlets over the HVBackup engine, which runs as a long-lived
# Node process (bridge/server.mjs, which runs bridge/server.ts) started on first use. One
# public function per file in public/, helpers in private/. Keep every file parseable by
# Windows PowerShell 5.1.
Set-StrictMode -Version 3.0

$script:ModuleRoot = $PSScriptRoot
$script:HVEngine = $null
$script:HVEngineNextId = 0

foreach ($folder in @('private', 'public')) {
    foreach ($file in Get-ChildItem -Path (Join-Path $PSScriptRoot $folder) -Filter '*.ps1' | Sort-Object Name) {
        . $file.FullName
    }
}

# Closing the engine's stdin lets it finish (cancelling what still runs) and exit.
$ExecutionContext.SessionState.Module.OnRemove = { Stop-HVEngine }
