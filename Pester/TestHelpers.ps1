# Shared by the Pester suites: paths and the module import.
$script:RepoRoot = Split-Path -Parent $PSScriptRoot
$script:ModuleManifest = Join-Path $script:RepoRoot 'psmodule/HVBackup/HVBackup.psd1'
$script:FixtureMethods = Join-Path $script:RepoRoot 'test/bridge/fixtures/test-methods.ts'
$script:node = Join-Path $script:RepoRoot 'node_modules/node/bin/node'
if ($env:OS -eq 'Windows_NT') { $script:node = Join-Path $script:RepoRoot 'node_modules/node/bin/node.exe' }

function Import-HVBackupForTest {
    Import-Module $script:ModuleManifest -Force -ErrorAction Stop
}

function Get-FolderSnapshot {
    # Every file under a folder with its size and SHA-256: equal snapshots mean nothing changed.
    param([string] $Path)
    Get-ChildItem -LiteralPath $Path -Recurse -Force | Sort-Object FullName | ForEach-Object {
        if ($_.PSIsContainer) { "D $($_.FullName)" } else { "F $($_.FullName) $($_.Length) $((Get-FileHash -LiteralPath $_.FullName -Algorithm SHA256).Hash)" }
    }
}

function New-TestEngineException {
    # The exception Invoke-HVEngine throws for an engine error (for mocks of it).
    param([string] $Code, [string] $Message, [string] $Target)
    & (Get-Module HVBackup) { param($c, $m, $t) New-HVEngineException -Code $c -Message $m -Target $t } $Code $Message $Target
}

function Get-RawDiskHash {
    # SHA-256 of a VHDX's flat (raw) content, converted by the engine's CLI into TestDrive:.
    param([string] $Vhdx)
    $raw = Join-Path (Resolve-Path 'TestDrive:\').ProviderPath ("raw-" + [guid]::NewGuid() + '.img')
    & $script:node (Join-Path $script:RepoRoot 'bin/hvbackup.js') vhdx convert --to raw $Vhdx $raw 2>&1 | Out-Null
    if ($LASTEXITCODE -ne 0) { throw "hvbackup vhdx convert failed for $Vhdx" }
    try { (Get-FileHash -LiteralPath $raw -Algorithm SHA256).Hash } finally { Remove-Item -LiteralPath $raw }
}
