# The module against the real engine on throwaway local-host VMs in TestDrive:.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Remove-Item Env:HVBACKUP_BRIDGE_TEST_METHODS -ErrorAction SilentlyContinue
    Import-HVBackupForTest
    $script:sb = New-HVSandbox -Path 'TestDrive:\sb' -VMCount 2 -SizeBytes 32MB

}

AfterAll {
    Remove-Module HVBackup -Force -ErrorAction SilentlyContinue
}

Describe 'HVBackup on local-host VMs' -Tag Integration {
    It 'New-HVSandbox made two VMs and an empty repository' {
        $vms = @(Get-HVVM -Path $sb.VMFolder)
        $vms.Count | Should -Be 2
        $vms[0].PSObject.TypeNames[0] | Should -Be 'HVBackup.VM'
        $vms.Host | Should -Be @('local', 'local')
        (Get-HVRepository -Path $sb.Repository).RestorePoints | Should -Be 0
    }

    It '-WhatIf on backup, restore and remove changes nothing on disk' {
        [void](Get-HVVM -Path $sb.VMFolder | Backup-HVVM -Repository $sb.Repository)
        $before = Get-FolderSnapshot -Path (Resolve-Path 'TestDrive:\sb').ProviderPath
        $out = @(Get-HVVM -Path $sb.VMFolder | Backup-HVVM -Repository $sb.Repository -WhatIf)
        $out.Count | Should -Be 0
        [void](Get-HVRestorePoint -Repository $sb.Repository -VMName vm01 -Latest | Restore-HVVM -Path 'TestDrive:\whatif-restore' -WhatIf)
        [void](Get-HVRestorePoint -Repository $sb.Repository | Remove-HVRestorePoint -WhatIf)
        $after = Get-FolderSnapshot -Path (Resolve-Path 'TestDrive:\sb').ProviderPath
        Compare-Object @($before) @($after) | Should -BeNullOrEmpty
        Test-Path 'TestDrive:\whatif-restore' | Should -BeFalse
        @(Get-HVRestorePoint -Repository $sb.Repository).Count | Should -Be 2
    }

    It 'backs up both VMs through the pipeline' {
        $results = @(Get-HVVM -Path $sb.VMFolder | Backup-HVVM -Repository $sb.Repository)
        $results.Count | Should -Be 2
        $results.Status | Should -Be @('success', 'success')
        $results[0].PSObject.TypeNames[0] | Should -Be 'HVBackup.BackupResult'
        $results[0].TotalBytes | Should -BeOfType [long]
        $results[0].TotalBytes | Should -Be 32MB
        $results | ForEach-Object { $_.PointId | Should -Not -BeNullOrEmpty }
    }

    It 'lists restore points as typed objects, filtered by VM and latest' {
        $all = @(Get-HVRestorePoint -Repository $sb.Repository)
        $all.Count | Should -Be 4
        $all[0].PSObject.TypeNames[0] | Should -Be 'HVBackup.RestorePoint'
        $all[0].CreatedAt | Should -BeOfType [datetime]
        $all[0].StoredBytes | Should -BeOfType [long]
        $latest = @(Get-HVRestorePoint -Repository $sb.Repository -VMName vm01 -Latest)
        $latest.Count | Should -Be 1
        $latest[0].VMName | Should -Be 'vm01'
        $latest[0].CreatedAt | Should -Be (($all | Where-Object VMName -eq 'vm01' | Measure-Object CreatedAt -Maximum).Maximum)
    }

    It 'restores the latest point of vm01 with the same disk content' {
        $r = Get-HVRestorePoint -Repository $sb.Repository -VMName vm01 -Latest | Restore-HVVM -Path 'TestDrive:\restored'
        $r.PSObject.TypeNames[0] | Should -Be 'HVBackup.RestoreResult'
        $r.Status | Should -Be 'success'
        $restoredDisk = @($r.Disks)[0].Path
        Test-Path -LiteralPath $restoredDisk | Should -BeTrue
        $original = Join-Path $sb.VMPaths[0] 'Virtual Hard Disks/vm01.vhdx'
        Get-RawDiskHash $restoredDisk | Should -Be (Get-RawDiskHash $original)
    }

    It 'verifies the repository' {
        $errs = $null
        $report = Test-HVRestorePoint -Repository $sb.Repository -ErrorVariable errs
        $report.PSObject.TypeNames[0] | Should -Be 'HVBackup.VerifyReport'
        $report.OK | Should -BeTrue
        $report.PointsChecked | Should -Be 4
        $errs.Count | Should -Be 0
    }

    It 'reports a failing VM in a batch without stopping the others' {
        $ghost = [pscustomobject]@{ PSTypeName = 'HVBackup.VM'; Name = 'ghost'; Id = 'ghost-id'; Host = 'local'; Location = (Join-Path $sb.VMFolder 'ghost'); State = 'ready' }
        $inputs = @((Get-HVVM -Path $sb.VMFolder -Name vm02), $ghost)
        $errs = $null
        $results = @($inputs | Backup-HVVM -Repository $sb.Repository -ErrorVariable errs -ErrorAction SilentlyContinue)
        $results.Count | Should -Be 1
        $results[0].VMName | Should -Be 'vm02'
        $results[0].Status | Should -Be 'success'
        $errs.Count | Should -Be 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'HVBackup.ERR_*,Backup-HVVM'
        $errs[0].Exception.Message | Should -BeLike '*ghost*'
    }

    It 'stops with a terminating ObjectNotFound error for a missing repository' {
        $caught = $null
        try { Get-HVVM -Path $sb.VMFolder | Backup-HVVM -Repository 'TestDrive:\no-such-repo' } catch { $caught = $_ }
        $caught | Should -Not -BeNullOrEmpty
        $caught.FullyQualifiedErrorId | Should -Be 'HVBackup.ERR_NOT_FOUND,Backup-HVVM'
        [string]$caught.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $caught.Exception.Message | Should -BeLike '*no-such-repo*'
        Test-Path 'TestDrive:\no-such-repo' | Should -BeFalse
    }

    It 'removes restore points piped from Get-HVRestorePoint' {
        $old = @(Get-HVRestorePoint -Repository $sb.Repository -VMName vm02 | Sort-Object CreatedAt | Select-Object -First 1)
        $removed = $old | Remove-HVRestorePoint -Confirm:$false
        $removed.Status | Should -Be 'removed'
        @(Get-HVRestorePoint -Repository $sb.Repository -VMName vm02).Id | Should -Not -Contain $old[0].Id
        (Get-HVRepository -Path $sb.Repository).RestorePoints | Should -Be 4
    }

    # (One Describe: Pester removes what a Describe added to TestDrive when it ends.)
    It 'shows engine progress as Write-Progress bars that complete, and engine logs with -Verbose' {
        Mock Write-Progress -ModuleName HVBackup {}
        $verbose = Get-HVVM -Path $sb.VMFolder -Name vm01 | Backup-HVVM -Repository $sb.Repository -Full -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }
        Should -Invoke Write-Progress -ModuleName HVBackup -ParameterFilter { $PercentComplete -ge 0 -and -not $Completed }
        Should -Invoke Write-Progress -ModuleName HVBackup -ParameterFilter { $Completed }
        @($verbose).Count | Should -BeGreaterThan 0
        (@($verbose | ForEach-Object Message) -join "`n") | Should -Match 'vm01'
    }
    It 'restores a point under -NewName beside the original' {
        $r = Get-HVRestorePoint -Repository $sb.Repository -VMName vm02 -Latest | Restore-HVVM -Path 'TestDrive:\copy' -NewName 'vm02-copy'
        $r.Status | Should -Be 'success'
        $vm = @(Get-HVVM -Path 'TestDrive:' -Name 'vm02-copy')
        $vm.Count | Should -Be 1
        $vm[0].Id | Should -Not -Be (Get-HVVM -Path $sb.VMFolder -Name vm02).Id
    }
}

Describe 'What -WhatIf prints' -Tag Integration {
    It 'is the engine''s own plan for the backup' {
        # What-if lines go to the host, not to a stream: a transcript records them.
        $transcript = Join-Path (Resolve-Path 'TestDrive:\').ProviderPath 'whatif.txt'
        Start-Transcript -LiteralPath $transcript | Out-Null
        try {
            Get-HVVM -Path $sb.VMFolder -Name vm01 | Backup-HVVM -Repository $sb.Repository -WhatIf
        } finally {
            Stop-Transcript | Out-Null
        }
        $text = Get-Content -LiteralPath $transcript -Raw
        $text | Should -Match "What if: Back up VM 'vm01'"
        $text | Should -Match 'create a backup checkpoint of VM vm01'
        $text | Should -Match 'vm01\.vhdx'
    }
}

Describe 'Repair-HVRepository' -Tag Integration {
    It 'takes the chunks of a deleted pack out of the index, and the next backup reads the disk whole and is whole' {
        $rb = New-HVSandbox -Path 'TestDrive:\repair' -VMCount 1 -SizeBytes 16MB
        $vm = Get-HVVM -Path $rb.VMFolder -Name vm01
        [void]($vm | Backup-HVVM -Repository $rb.Repository -Confirm:$false)
        $pack = Get-ChildItem -LiteralPath (Join-Path $rb.Repository 'packs') -Recurse -File | Sort-Object Length -Descending | Select-Object -First 1
        Remove-Item -LiteralPath $pack.FullName
        (Test-HVRestorePoint -Repository $rb.Repository -Quick -ErrorAction SilentlyContinue).OK | Should -BeFalse
        $errs = $null
        $report = Repair-HVRepository -Repository $rb.Repository -Confirm:$false -ErrorVariable errs -ErrorAction SilentlyContinue -WarningAction SilentlyContinue
        $report.OK | Should -BeFalse
        $errs.Count | Should -BeGreaterThan 0
        $report.Repair.ChunksRemoved | Should -BeGreaterThan 0
        @($report.Repair.PointsToRescan).Count | Should -Be 1
        (Get-HVRepository -Path $rb.Repository).VMsToRescan | Should -Be @('vm01')
        $b = $vm | Backup-HVVM -Repository $rb.Repository -Confirm:$false
        $b.Method | Should -Be 'scan'
        $b.MethodReason | Should -Match 'repair'
        (Get-HVRestorePoint -Repository $rb.Repository -VMName vm01 -Latest | Test-HVRestorePoint).OK | Should -BeTrue
        # Nothing changed on the disk since the first point: the scan stored every byte it lacked again.
        (Test-HVRestorePoint -Repository $rb.Repository).OK | Should -BeTrue
    }
}
