# Run every Pester/**/*.Tests.ps1 and write {"passed":N,"failed":N,"skipped":N} to -ResultFile
# (scripts/run-tests.ts adds it to the grand total). Uses a system Pester 5 when there is
# one, else the copy scripts/setup-powershell.mjs restored into tools/nuget.
param(
    [Parameter(Mandatory)] [string] $ResultFile,
    [string[]] $Tag,
    [string[]] $ExcludeTag
)
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
$system = Get-Module -ListAvailable -Name Pester | Where-Object { $_.Version -ge [version]'5.0' } | Sort-Object Version -Descending | Select-Object -First 1
if ($system) {
    Import-Module $system.Path -Force
} else {
    $local = Join-Path $root 'tools/nuget/pester/5.7.1/tools/Pester.psd1'
    if (-not (Test-Path -LiteralPath $local)) { throw "Pester 5 not found: run 'npm run setup' (expected $local)" }
    Import-Module $local -Force
}

$config = New-PesterConfiguration
$config.Run.Path = @(Get-ChildItem -Path $PSScriptRoot -Recurse -Filter '*.Tests.ps1' | Sort-Object FullName | ForEach-Object { $_.FullName })
$config.Run.PassThru = $true
$config.Output.Verbosity = 'Detailed'
if ($Tag) { $config.Filter.Tag = $Tag }
if ($ExcludeTag) { $config.Filter.ExcludeTag = $ExcludeTag }
$result = Invoke-Pester -Configuration $config

# A block or file that fails before its tests run counts as failed, never as nothing.
$failed = $result.FailedCount + $result.FailedBlocksCount + $result.FailedContainersCount
$failures = @(
    foreach ($t in $result.Failed) { "$($t.ExpandedPath)`n    $(($t.ErrorRecord | Select-Object -First 1 | ForEach-Object { $_.ToString() }) -replace "`n", "`n    ")" }
    foreach ($b in $result.FailedBlocks) { "$($b.ExpandedPath) (block)`n    $(($b.ErrorRecord | Select-Object -First 1 | ForEach-Object { $_.ToString() }))" }
    foreach ($c in $result.FailedContainers) { "$($c.Item) (file)`n    $(($c.ErrorRecord | Select-Object -First 1 | ForEach-Object { $_.ToString() }))" }
)
$summary = [ordered]@{ passed = $result.PassedCount; failed = $failed; skipped = $result.SkippedCount; failures = $failures }
$summary | ConvertTo-Json -Compress | Set-Content -LiteralPath $ResultFile -Encoding ascii
