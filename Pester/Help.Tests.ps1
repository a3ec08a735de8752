BeforeDiscovery {
    Import-Module (Join-Path (Split-Path -Parent $PSScriptRoot) 'psmodule/HVBackup/HVBackup.psd1') -Force
    $script:commands = @(Get-Command -Module HVBackup | ForEach-Object { @{ Name = $_.Name } })
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-HVBackupForTest
    $script:common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
}

Describe 'Help of <Name>' -Tag Unit -ForEach $commands {
    BeforeAll {
        $help = Get-Help $Name -Full
        $cmd = Get-Command $Name
    }
    It 'has a synopsis written by hand' {
        $help.Synopsis | Should -Not -BeNullOrEmpty
        $help.Synopsis | Should -Not -Match ([regex]::Escape($Name) + ' \[')
    }
    It 'has a description' {
        ($help.Description | Out-String).Trim().Length | Should -BeGreaterThan 40
    }
    It 'has at least two examples with code and remarks' {
        @($help.Examples.Example).Count | Should -BeGreaterOrEqual 2
        foreach ($ex in $help.Examples.Example) {
            $ex.Code | Should -Not -BeNullOrEmpty
            ($ex.Remarks | Out-String).Trim() | Should -Not -BeNullOrEmpty
        }
    }
    It 'describes its output' {
        ($help.returnValues | Out-String).Trim() | Should -Match 'HVBackup\.'
    }
    It 'describes every parameter' {
        $params = @($cmd.Parameters.Keys | Where-Object { $common -notcontains $_ })
        foreach ($p in $params) {
            $ph = $help.Parameters.Parameter | Where-Object Name -eq $p
            ($ph.Description | Out-String).Trim() | Should -Not -BeNullOrEmpty -Because "parameter -$p of $Name needs help"
        }
    }
}

Describe 'Remove-HVRepositoryKey help' -Tag Unit {
    It 'does not claim -Force removes the last key (the engine never removes it)' {
        $text = (Get-Help Remove-HVRepositoryKey -Full | Out-String) -replace '\s+', ' '
        $text | Should -Not -Match 'last key, or the one the given password opened, unless -Force'
        $text | Should -Match 'never removes the last key file'
    }
}
