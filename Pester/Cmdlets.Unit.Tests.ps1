# Cmdlet logic with the engine call mocked (InModuleScope): what each cmdlet asks the
# engine, how it reports failures, and that -WhatIf only ever asks for a plan.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-HVBackupForTest
    # Hyper-V's Get-VM is not on this machine; a stand-in so it can be mocked.
    function Get-VM { param([string[]] $Name) }
    $script:ids = @([guid]'11111111-2222-3333-4444-555555555555', [guid]'66666666-7777-8888-9999-000000000000')
    Mock Get-VM {
        [pscustomobject]@{ PSTypeName = 'Microsoft.HyperV.PowerShell.VirtualMachine'; Name = 'web01'; VMName = 'web01'; Id = $ids[0]; VMId = $ids[0]; Path = 'C:\ProgramData\Microsoft\Windows\Hyper-V'; State = 'Running'; ComputerName = 'HV1' }
        [pscustomobject]@{ PSTypeName = 'Microsoft.HyperV.PowerShell.VirtualMachine'; Name = 'db01'; VMName = 'db01'; Id = $ids[1]; VMId = $ids[1]; Path = 'C:\ProgramData\Microsoft\Windows\Hyper-V'; State = 'Running'; ComputerName = 'HV1' }
    }
}

Describe 'Backup-HVVM' -Tag Unit {
    It 'backs up Get-VM output on the Hyper-V host, by VM id, in one engine call' {
        Mock Invoke-HVEngine -ModuleName HVBackup {
            foreach ($s in $Params.sources) { [pscustomobject]@{ vmName = "vm-$s"; source = $s; status = 'success'; pointId = 'abc'; startedAt = '2026-01-02T03:04:05.000Z'; totalBytes = 10; readBytes = 5; storedBytes = 2 } }
        }
        $out = @(Get-VM | Backup-HVVM -Repository '/srv/backups/repo1' -Confirm:$false)
        $out.Count | Should -Be 2
        $out[0].PSObject.TypeNames[0] | Should -Be 'HVBackup.BackupResult'
        $out[0].StartedAt | Should -BeOfType [datetime]
        $out[0].TotalBytes | Should -BeOfType [long]
        Should -Invoke Invoke-HVEngine -ModuleName HVBackup -Times 1 -Exactly -ParameterFilter {
            $Method -eq 'backupVMs' -and $Params.host -eq 'hyperv' -and ($Params.sources -join ',') -eq "$($ids[0]),$($ids[1])" -and -not $Params.ContainsKey('whatIf')
        }
    }

    It 'passes -AllowUserCheckpoints to the Hyper-V driver, and nothing of the kind without it' {
        Mock Invoke-HVEngine -ModuleName HVBackup { foreach ($s in $Params.sources) { [pscustomobject]@{ vmName = "vm-$s"; source = $s; status = 'success'; startedAt = '2026-01-02T03:04:05Z'; totalBytes = 1; readBytes = 1; storedBytes = 1 } } }
        [void](Get-VM | Backup-HVVM -Repository '/srv/r' -AllowUserCheckpoints -Confirm:$false)
        Should -Invoke Invoke-HVEngine -ModuleName HVBackup -Times 1 -Exactly -ParameterFilter { $Params.host -eq 'hyperv' -and $Params.hyperv.allowUserCheckpoints -eq $true }
        [void](Get-VM | Backup-HVVM -Repository '/srv/r' -Confirm:$false)
        Should -Invoke Invoke-HVEngine -ModuleName HVBackup -Times 1 -Exactly -ParameterFilter { -not $Params.ContainsKey('hyperv') }
    }

    It 'passes -HostStepTimeoutSec to the Hyper-V driver as stepTimeoutSeconds (0 included), beside -AllowUserCheckpoints, and refuses a negative one' {
        Mock Invoke-HVEngine -ModuleName HVBackup { foreach ($s in $Params.sources) { [pscustomobject]@{ vmName = "vm-$s"; source = $s; status = 'success'; startedAt = '2026-01-02T03:04:05Z'; totalBytes = 1; readBytes = 1; storedBytes = 1 } } }
        [void](Get-VM | Backup-HVVM -Repository '/srv/r' -HostStepTimeoutSec 900 -AllowUserCheckpoints -Confirm:$false)
        Should -Invoke Invoke-HVEngine -ModuleName HVBackup -Times 1 -Exactly -ParameterFilter { $Params.hyperv.stepTimeoutSeconds -eq 900 -and $Params.hyperv.allowUserCheckpoints -eq $true }
        [void](Get-VM | Backup-HVVM -Repository '/srv/r' -HostStepTimeoutSec 0 -Confirm:$false)
        Should -Invoke Invoke-HVEngine -ModuleName HVBackup -Times 1 -Exactly -ParameterFilter { $Params.hyperv.stepTimeoutSeconds -eq 0 -and -not $Params.hyperv.ContainsKey('allowUserCheckpoints') }
        { Get-VM | Backup-HVVM -Repository '/srv/r' -HostStepTimeoutSec -5 -Confirm:$false } | Should -Throw -ErrorId 'ParameterArgumentValidationError,Backup-HVVM'
    }

    It 'takes Get-HVVM output as local-host VM folders' {
        Mock Invoke-HVEngine -ModuleName HVBackup { [pscustomobject]@{ vmName = 'vm01'; source = $Params.sources[0]; status = 'success'; startedAt = '2026-01-02T03:04:05Z'; totalBytes = 1; readBytes = 1; storedBytes = 1 } }
        $vm = [pscustomobject]@{ PSTypeName = 'HVBackup.VM'; Name = 'vm01'; Id = 'x1'; Host = 'local'; Location = '/srv/vms/vm01'; State = 'ready' }
        [void]($vm | Backup-HVVM -Repository '/srv/repo' -ThrottleLimit 3 -Full)
        Should -Invoke Invoke-HVEngine -ModuleName HVBackup -ParameterFilter {
            $Params.host -eq 'local' -and $Params.sources[0] -eq '/srv/vms/vm01' -and $Params.parallel -eq 3 -and $Params.full -eq $true -and $Params.repository -eq '/srv/repo'
        }
    }

    It 'reports a failed VM as a non-terminating error and outputs the others' {
        Mock Invoke-HVEngine -ModuleName HVBackup {
            [pscustomobject]@{ vmName = 'web01'; source = 'a'; status = 'success'; startedAt = '2026-01-02T03:04:05Z'; totalBytes = 1; readBytes = 1; storedBytes = 1 }
            [pscustomobject]@{ vmName = 'db01'; source = 'b'; status = 'failed'; startedAt = '2026-01-02T03:04:05Z'; totalBytes = 0; readBytes = 0; storedBytes = 0; error = [pscustomobject]@{ code = 'ERR_LOCKED'; message = 'VM db01 is locked by another backup'; target = 'db01' } }
        }
        $errs = $null
        $out = @(Get-VM | Backup-HVVM -Repository '/srv/r' -ErrorVariable errs -ErrorAction SilentlyContinue)
        $out.Count | Should -Be 1
        $out[0].VMName | Should -Be 'web01'
        $errs.Count | Should -Be 1
        $errs[0].FullyQualifiedErrorId | Should -Be 'HVBackup.ERR_LOCKED,Backup-HVVM'
        [string]$errs[0].CategoryInfo.Category | Should -Be 'ResourceBusy'
        $errs[0].TargetObject.VMName | Should -Be 'db01'
        $errs[0].Exception.Message | Should -BeLike "Backup of VM 'db01' failed: VM db01 is locked*"
    }

    It 'stops with a terminating error when the repository cannot be opened' {
        Mock Invoke-HVEngine -ModuleName HVBackup { throw (New-TestEngineException -Code 'ERR_NOT_FOUND' -Message 'repository /srv/nope does not exist' -Target '/srv/nope') }
        $caught = $null
        try { Get-VM | Backup-HVVM -Repository '/srv/nope' -ErrorAction Continue } catch { $caught = $_ }
        $caught | Should -Not -BeNullOrEmpty
        $caught.FullyQualifiedErrorId | Should -Be 'HVBackup.ERR_NOT_FOUND,Backup-HVVM'
        [string]$caught.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $caught.Exception.Message | Should -Match '/srv/nope'
    }

    It 'with -WhatIf asks the engine for a plan only, never for the backup' {
        Mock Invoke-HVEngine -ModuleName HVBackup { [pscustomobject]@{ vmName = 'web01'; source = 'a'; status = 'planned'; startedAt = '2026-01-02T03:04:05Z'; totalBytes = 1; readBytes = 0; storedBytes = 0; plan = @('create a backup checkpoint') } }
        $out = @(Get-VM | Backup-HVVM -Repository '/srv/r' -WhatIf)
        $out.Count | Should -Be 0
        Should -Invoke Invoke-HVEngine -ModuleName HVBackup -Times 2 -Exactly -ParameterFilter { $Params.whatIf -eq $true }
        Should -Invoke Invoke-HVEngine -ModuleName HVBackup -Times 0 -Exactly -ParameterFilter { -not $Params.ContainsKey('whatIf') }
    }
}

Describe 'Format-HVPlan' -Tag Unit {
    It 'puts the engine plan lines under the heading' {
        InModuleScope HVBackup {
            $text = Format-HVPlan -Heading 'Back up VM web01' -Plan @('step one', 'step two')
            $text | Should -Be ("Back up VM web01:" + [Environment]::NewLine + '  step one' + [Environment]::NewLine + '  step two')
        }
    }
}

Describe 'Remove-HVRestorePoint' -Tag Unit {
    It 'removes each piped restore point with its own engine call' {
        Mock Invoke-HVEngine -ModuleName HVBackup { [pscustomobject]@{ ids = $Params.ids; status = 'removed' } }
        $points = 'aaa1', 'bbb2' | ForEach-Object { [pscustomobject]@{ PSTypeName = 'HVBackup.RestorePoint'; Id = $_; Repository = '/srv/repo'; VMName = 'web01' } }
        $out = @($points | Remove-HVRestorePoint -Confirm:$false)
        $out.Count | Should -Be 2
        $out[1].Ids | Should -Be @('bbb2')
        Should -Invoke Invoke-HVEngine -ModuleName HVBackup -Times 2 -Exactly -ParameterFilter { $Method -eq 'removeRestorePoints' -and -not $Params.ContainsKey('whatIf') }
    }
    It 'with -WhatIf removes nothing' {
        Mock Invoke-HVEngine -ModuleName HVBackup { [pscustomobject]@{ ids = $Params.ids; status = 'planned' } }
        [void]([pscustomobject]@{ Id = 'aaa1'; Repository = '/srv/repo' } | Remove-HVRestorePoint -WhatIf)
        Should -Invoke Invoke-HVEngine -ModuleName HVBackup -Times 0 -Exactly -ParameterFilter { -not $Params.ContainsKey('whatIf') }
    }
}

Describe 'New-HVRepository' -Tag Unit {
    It 'refuses -Encrypt without a password' {
        { New-HVRepository -Path '/srv/repo' -Encrypt } | Should -Throw -ErrorId 'HVBackup.ERR_INVALID_ARGUMENT,New-HVRepository'
    }
    It 'sends the password from -Credential to the engine' {
        Mock Invoke-HVEngine -ModuleName HVBackup { [pscustomobject]@{ path = $Params.path; encrypted = $true; createdAt = '2026-01-02T03:04:05Z' } }
        $cred = New-Object System.Management.Automation.PSCredential('ignored', (ConvertTo-SecureString 'S3cret!' -AsPlainText -Force))
        $r = New-HVRepository -Path '/srv/repo' -Encrypt -Credential $cred
        $r.Encrypted | Should -BeTrue
        Should -Invoke Invoke-HVEngine -ModuleName HVBackup -ParameterFilter { $Method -eq 'initRepository' -and $Params.password -eq 'S3cret!' -and $Params.encrypt -eq $true }
    }
}

Describe 'Get-HVRepository' -Tag Unit {
    It 'maps a locked repository to ResourceBusy, terminating, with the path as target' {
        Mock Invoke-HVEngine -ModuleName HVBackup { throw (New-TestEngineException -Code 'ERR_LOCKED' -Message 'repository /srv/repo is locked exclusively by host1 (pid 42)') }
        $caught = $null
        try { Get-HVRepository -Path '/srv/repo' } catch { $caught = $_ }
        $caught.FullyQualifiedErrorId | Should -Be 'HVBackup.ERR_LOCKED,Get-HVRepository'
        [string]$caught.CategoryInfo.Category | Should -Be 'ResourceBusy'
        $caught.TargetObject | Should -Be '/srv/repo'
    }
}

Describe 'Repair-HVRepository' -Tag Unit {
    It 'asks the engine to verify with repair, and reports each problem as an error' {
        Mock Invoke-HVEngine -ModuleName HVBackup {
            [pscustomobject]@{ repository = $Params.repository; ok = $false; pointsChecked = 2; chunksChecked = 9; bytesChecked = 100
                problems = @([pscustomobject]@{ chunk = 'c0ffee'; problem = 'chunk is corrupt'; points = @('p1', 'p2') })
                repair = [pscustomobject]@{ indexObjectsRemoved = 0; packsRescued = 0; chunksRemoved = 1; packsRewritten = 1; packsRemoved = 0; pointsToRescan = @('p1', 'p2') } }
        }
        $errs = $null
        $warns = $null
        $r = Repair-HVRepository -Repository '/srv/repo' -Confirm:$false -ErrorVariable errs -ErrorAction SilentlyContinue -WarningVariable warns -WarningAction SilentlyContinue
        $r.PSObject.TypeNames[0] | Should -Be 'HVBackup.VerifyReport'
        $r.Repair.ChunksRemoved | Should -Be 1
        $errs.Count | Should -Be 1
        $errs[0].CategoryInfo.Category | Should -Be 'InvalidData'
        "$warns" | Should -Match 'reads their disks whole'
        Should -Invoke Invoke-HVEngine -ModuleName HVBackup -Times 1 -Exactly -ParameterFilter { $Method -eq 'verifyRepository' -and $Params.repair -eq $true }
    }
    It 'passes -Quick on, and Test-HVRestorePoint -Quick too' {
        Mock Invoke-HVEngine -ModuleName HVBackup { [pscustomobject]@{ repository = $Params.repository; ok = $true; pointsChecked = 1; chunksChecked = 3; bytesChecked = 0; problems = @() } }
        [void](Repair-HVRepository -Repository '/srv/repo' -Quick -Confirm:$false)
        [void](Test-HVRestorePoint -Repository '/srv/repo' -Quick)
        [void](Test-HVRestorePoint -Repository '/srv/repo')
        Should -Invoke Invoke-HVEngine -ModuleName HVBackup -Times 2 -Exactly -ParameterFilter { $Params.quick -eq $true }
        Should -Invoke Invoke-HVEngine -ModuleName HVBackup -Times 1 -Exactly -ParameterFilter { -not $Params.ContainsKey('quick') }
    }
    It 'Test-HVRestorePoint -ReadSubset n/m asks for part n of m, and refuses anything else' {
        Mock Invoke-HVEngine -ModuleName HVBackup { [pscustomobject]@{ repository = $Params.repository; ok = $true; pointsChecked = 1; chunksChecked = 3; bytesChecked = 9; problems = @() } }
        [void](Test-HVRestorePoint -Repository '/srv/repo' -ReadSubset '3/7')
        Should -Invoke Invoke-HVEngine -ModuleName HVBackup -Times 1 -Exactly -ParameterFilter { $Params.readSubset.part -eq 3 -and $Params.readSubset.of -eq 7 }
        { Test-HVRestorePoint -Repository '/srv/repo' -ReadSubset 'monday' } | Should -Throw -ErrorId 'ParameterArgumentValidationError,Test-HVRestorePoint'
    }
    It 'with -WhatIf asks the engine nothing' {
        Mock Invoke-HVEngine -ModuleName HVBackup { throw 'not expected' }
        Repair-HVRepository -Repository '/srv/repo' -WhatIf
        Should -Invoke Invoke-HVEngine -ModuleName HVBackup -Times 0 -Exactly
    }
}

Describe 'Restore-HVVM -AllowDamaged' -Tag Unit {
    It 'asks for a tolerant restore, returns the result and reports the damage as an error' {
        Mock Invoke-HVEngine -ModuleName HVBackup {
            [pscustomobject]@{ pointId = 'abc'; vmName = 'web01'; directory = '/srv/out'; status = 'partial'; disks = @()
                damaged = @([pscustomobject]@{ disk = 'SCSI:0:0'; offset = 262144; length = 262144; chunk = 'c0ffee'; problem = 'chunk is corrupt' }) }
        }
        $errs = $null
        $r = Restore-HVVM -Repository '/srv/repo' -Id 'abc' -Path '/srv/out' -AllowDamaged -Confirm:$false -ErrorVariable errs -ErrorAction SilentlyContinue
        $r.Status | Should -Be 'partial'
        @($r.Damaged)[0].Length | Should -Be 262144
        $errs.Count | Should -Be 1
        "$($errs[0])" | Should -Match '262144 bytes written as zeros'
        Should -Invoke Invoke-HVEngine -ModuleName HVBackup -Times 1 -Exactly -ParameterFilter { $Method -eq 'restoreVM' -and $Params.allowDamaged -eq $true }
    }
}
