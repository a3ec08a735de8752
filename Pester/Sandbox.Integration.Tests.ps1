# The runbook test from New-HVSandbox's help, run as written against a small runbook.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Remove-Item Env:HVBACKUP_BRIDGE_TEST_METHODS -ErrorAction SilentlyContinue
    Import-HVBackupForTest
    $script:runbook = Join-Path (Resolve-Path 'TestDrive:\').ProviderPath 'MyBackupRunbook.ps1'
    Set-Content -LiteralPath $runbook -Value @'
param([Parameter(Mandatory)] [string] $VMFolder, [Parameter(Mandatory)] [string] $Repository)
$ErrorActionPreference = 'Stop'
Get-HVVM -Path $VMFolder | Backup-HVVM -Repository $Repository | Out-Null
'@
}

AfterAll {
    Remove-Module HVBackup -Force -ErrorAction SilentlyContinue
}

Describe 'Nightly backup runbook (New-HVSandbox help example)' -Tag Integration {
    BeforeAll { $sb = New-HVSandbox -Path TestDrive:\sb -VMCount 2 -SizeBytes 32MB }
    It 'leaves one restore point per VM' {
        & $runbook -VMFolder $sb.VMFolder -Repository $sb.Repository
        (Get-HVRestorePoint -Repository $sb.Repository).Count | Should -Be 2
    }
    It 'leaves a repository that verifies' {
        (Test-HVRestorePoint -Repository $sb.Repository).OK | Should -BeTrue
    }
    It 'the help example is this test' {
        $example = (Get-Help New-HVSandbox -Examples).Examples.Example | Where-Object { $_.Code -match 'Describe' }
        $example.Code | Should -Match ([regex]::Escape("(Get-HVRestorePoint -Repository `$sb.Repository).Count | Should -Be 2"))
        $example.Code | Should -Match ([regex]::Escape("New-HVSandbox -Path TestDrive:\sb -VMCount 2 -SizeBytes 32MB"))
    }
    It 'keeps everything under the sandbox folder' {
        $sb.Repository | Should -BeLike "$($sb.Path)*"
        foreach ($p in $sb.VMPaths) { $p | Should -BeLike "$($sb.VMFolder)*" }
    }
}
