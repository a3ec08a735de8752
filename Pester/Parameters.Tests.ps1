# The parameter contract of every cmdlet (dbatools-style): exact parameter names, which are
# mandatory and which bind from the pipeline, ShouldProcess where state changes, OutputType.
BeforeDiscovery {
    $script:cases = @(
        @{ Name = 'New-HVRepository'; Params = 'Path', 'Encrypt', 'Password', 'Credential'; Mandatory = 'Path', 'Credential'; ByProperty = 'Path'; ShouldProcess = $true; Output = 'HVBackup.Repository'; Sets = 'Credential', 'Password' }
        @{ Name = 'Get-HVRepository'; Params = 'Path', 'Password'; Mandatory = 'Path'; ByProperty = 'Path', 'Password'; ShouldProcess = $false; Output = 'HVBackup.Repository'; Sets = '__AllParameterSets' }
        @{ Name = 'Backup-HVVM'; Params = 'Name', 'VMId', 'Location', 'VMHost', 'Repository', 'Password', 'Full', 'AllowUserCheckpoints', 'HostStepTimeoutSec', 'ThrottleLimit'; Mandatory = 'Name', 'Repository'; ByProperty = 'Name', 'VMId', 'Location', 'VMHost', 'Repository'; ShouldProcess = $true; Output = 'HVBackup.BackupResult'; Sets = '__AllParameterSets' }
        @{ Name = 'Get-HVRestorePoint'; Params = 'Repository', 'VMName', 'Latest', 'Id', 'Password'; Mandatory = 'Repository'; ByProperty = 'Repository', 'VMName'; ShouldProcess = $false; Output = 'HVBackup.RestorePoint'; Sets = '__AllParameterSets' }
        @{ Name = 'Restore-HVVM'; Params = 'Repository', 'Id', 'VMName', 'MediaPath', 'Path', 'NewName', 'AllowDamaged', 'Password'; Mandatory = 'Repository', 'Id', 'VMName', 'MediaPath', 'Path'; ByProperty = 'Repository', 'Id', 'VMName'; ShouldProcess = $true; Output = 'HVBackup.RestoreResult'; Sets = 'Media', 'Repository' }
        @{ Name = 'Test-HVRestorePoint'; Params = 'Repository', 'Id', 'Quick', 'ReadSubset', 'Password'; Mandatory = 'Repository'; ByProperty = 'Repository', 'Id'; ShouldProcess = $false; Output = 'HVBackup.VerifyReport'; Sets = '__AllParameterSets' }
        @{ Name = 'Remove-HVRestorePoint'; Params = 'Repository', 'Id', 'Password'; Mandatory = 'Repository', 'Id'; ByProperty = 'Repository', 'Id'; ShouldProcess = $true; Output = 'HVBackup.RemoveResult'; Sets = '__AllParameterSets' }
        @{ Name = 'Repair-HVRepository'; Params = 'Repository', 'Quick', 'Password'; Mandatory = 'Repository'; ByProperty = 'Repository'; ShouldProcess = $true; Output = 'HVBackup.VerifyReport'; Sets = '__AllParameterSets' }
        @{ Name = 'Get-HVVM'; Params = 'Path', 'Name'; Mandatory = @(); ByProperty = 'Path'; ShouldProcess = $false; Output = 'HVBackup.VM'; Sets = '__AllParameterSets' }
        @{ Name = 'New-HVSandbox'; Params = 'Path', 'VMCount', 'SizeBytes'; Mandatory = 'Path'; ByProperty = 'Path', 'VMCount', 'SizeBytes'; ShouldProcess = $true; Output = 'HVBackup.Sandbox'; Sets = '__AllParameterSets' }
        @{ Name = 'Invoke-HVRetention'; Params = 'Repository', 'KeepLast', 'Daily', 'Weekly', 'Monthly', 'Yearly', 'VMName', 'Prune', 'Password'; Mandatory = 'Repository'; ByProperty = 'Repository', 'VMName'; ShouldProcess = $true; Output = 'HVBackup.RetentionResult'; Sets = '__AllParameterSets' }
        @{ Name = 'Export-HVArchive'; Params = 'Repository', 'Pool', 'MediaPath', 'Device', 'Id', 'VMName', 'Full', 'Capacity', 'RetentionDays', 'Password'; Mandatory = 'Repository', 'Pool', 'MediaPath', 'Device'; ByProperty = 'Repository', 'Pool', 'Id', 'VMName'; ShouldProcess = $true; Output = 'HVBackup.ArchiveExport'; Sets = 'Device', 'Folder' }
        @{ Name = 'Import-HVArchive'; Params = 'MediaPath', 'Repository', 'Password'; Mandatory = 'MediaPath'; ByProperty = 'MediaPath'; ShouldProcess = $true; Output = 'HVBackup.ArchiveCatalog'; Sets = '__AllParameterSets' }
        @{ Name = 'Start-HVArchiveWatch'; Params = 'Repository', 'Pool', 'MediaPath', 'Device', 'VMName', 'Capacity', 'RetentionDays', 'Duration', 'Password'; Mandatory = 'Repository', 'Pool', 'MediaPath', 'Device'; ByProperty = 'Repository', 'Pool'; ShouldProcess = $true; Output = 'HVBackup.ArchiveWatch'; Sets = 'Device', 'Folder' }
        @{ Name = 'Add-HVRepositoryKey'; Params = 'Repository', 'Password', 'NewPassword'; Mandatory = 'Repository', 'Password', 'NewPassword'; ByProperty = 'Repository'; ShouldProcess = $true; Output = 'HVBackup.RepositoryKey'; Sets = '__AllParameterSets' }
        @{ Name = 'Get-HVRepositoryKey'; Params = 'Repository', 'Password'; Mandatory = 'Repository', 'Password'; ByProperty = 'Repository'; ShouldProcess = $false; Output = 'HVBackup.RepositoryKey'; Sets = '__AllParameterSets' }
        @{ Name = 'Remove-HVRepositoryKey'; Params = 'Repository', 'Id', 'Password', 'Force'; Mandatory = 'Repository', 'Id', 'Password'; ByProperty = 'Repository', 'Id'; ShouldProcess = $true; Output = 'HVBackup.RemoveResult'; Sets = '__AllParameterSets' }
        @{ Name = 'Set-HVRepositoryKey'; Params = 'Repository', 'Password', 'NewPassword'; Mandatory = 'Repository', 'Password', 'NewPassword'; ByProperty = 'Repository'; ShouldProcess = $true; Output = 'HVBackup.RepositoryKey'; Sets = '__AllParameterSets' }
    )
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-HVBackupForTest
    $script:common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
}

Describe '<Name> parameters' -Tag Unit -ForEach $cases {
    BeforeAll { $cmd = Get-Command $Name }
    It 'has exactly the expected parameters' {
        $actual = @($cmd.Parameters.Keys | Where-Object { $common -notcontains $_ })
        Compare-Object -ReferenceObject @($Params) -DifferenceObject $actual | Should -BeNullOrEmpty
    }
    It 'makes the expected parameters mandatory' {
        $actual = @($cmd.Parameters.Values | Where-Object { $_.Attributes | Where-Object { $_ -is [System.Management.Automation.ParameterAttribute] -and $_.Mandatory } } | ForEach-Object Name)
        Compare-Object -ReferenceObject @($Mandatory) -DifferenceObject $actual | Should -BeNullOrEmpty
    }
    It 'binds the expected parameters by property name' {
        $actual = @($cmd.Parameters.Values | Where-Object { $_.Attributes | Where-Object { $_ -is [System.Management.Automation.ParameterAttribute] -and $_.ValueFromPipelineByPropertyName } } | ForEach-Object Name)
        Compare-Object -ReferenceObject @($ByProperty) -DifferenceObject $actual | Should -BeNullOrEmpty
    }
    It 'has the expected parameter sets' {
        @($cmd.ParameterSets.Name | Sort-Object) | Should -Be @($Sets)
    }
    It 'supports ShouldProcess exactly when it changes state' {
        $cmd.Parameters.ContainsKey('WhatIf') | Should -Be $ShouldProcess
    }
    It 'declares its output type' {
        @($cmd.OutputType.Name) | Should -Be @($Output)
    }
}

Describe 'Pipeline parameter aliases' -Tag Unit {
    It 'Backup-HVVM takes VMName and Id (Get-VM, Get-HVVM output)' {
        $p = (Get-Command Backup-HVVM).Parameters
        $p['Name'].Aliases | Should -Contain 'VMName'
        $p['VMId'].Aliases | Should -Contain 'Id'
        $p['VMHost'].Aliases | Should -Contain 'Host'
    }
    It 'Restore-HVVM and Remove-HVRestorePoint take PointId' {
        (Get-Command Restore-HVVM).Parameters['Id'].Aliases | Should -Contain 'PointId'
        (Get-Command Remove-HVRestorePoint).Parameters['Id'].Aliases | Should -Contain 'PointId'
    }
    It 'Remove-HVRestorePoint asks before removing (ConfirmImpact High)' {
        $binding = (Get-Command Remove-HVRestorePoint).ScriptBlock.Attributes | Where-Object { $_ -is [System.Management.Automation.CmdletBindingAttribute] }
        $binding.ConfirmImpact | Should -Be 'High'
    }
}
