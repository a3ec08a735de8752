function New-HVSandbox {
    <#
    .SYNOPSIS
    Creates throwaway local-host VMs and a repository for testing runbooks.

    .DESCRIPTION
    Creates, in a folder of your choice (typically Pester's TestDrive:), small local-host
    VMs with sample data on their VHDX disks and an empty repository, so that a backup
    runbook can be tested end to end with Pester without touching real VMs. Get-HVVM -Path
    on the sandbox's VMFolder lists the VMs; everything lives under -Path.

    .PARAMETER Path
    The folder to create the sandbox in. Must be empty or not exist.

    .PARAMETER VMCount
    How many VMs to create (default 2).

    .PARAMETER SizeBytes
    Virtual size of each VM's disk (default 64 MB; small keeps tests fast).

    .OUTPUTS
    HVBackup.Sandbox. Path, Repository (the repository folder), VMFolder and VMPaths.

    .EXAMPLE
    $sb = New-HVSandbox -Path TestDrive:\sb -VMCount 2
    Get-HVVM -Path $sb.VMFolder | Backup-HVVM -Repository $sb.Repository

    Creates two VMs and backs them up.

    .EXAMPLE
    # A Pester test for your own runbook (MyBackupRunbook.ps1 takes -VMFolder and -Repository):
    Describe 'Nightly backup runbook' {
        BeforeAll { $sb = New-HVSandbox -Path TestDrive:\sb -VMCount 2 -SizeBytes 32MB }
        It 'leaves one restore point per VM' {
            & .\MyBackupRunbook.ps1 -VMFolder $sb.VMFolder -Repository $sb.Repository
            (Get-HVRestorePoint -Repository $sb.Repository).Count | Should -Be 2
        }
        It 'leaves a repository that verifies' {
            (Test-HVRestorePoint -Repository $sb.Repository).OK | Should -BeTrue
        }
    }

    Tests a runbook against throwaway VMs.

    .EXAMPLE
    New-HVSandbox -Path C:\Temp\sb -WhatIf

    Shows what would be created.
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('HVBackup.Sandbox')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName')]
        [string] $Path,

        [Parameter(ValueFromPipelineByPropertyName)]
        [ValidateRange(1, 32)]
        [int] $VMCount = 2,

        [Parameter(ValueFromPipelineByPropertyName)]
        [ValidateRange(1MB, 64GB)]
        [long] $SizeBytes = 64MB
    )
    process {
        $fsPath = ConvertTo-HVFileSystemPath $Path -Cmdlet $PSCmdlet
        if (-not $PSCmdlet.ShouldProcess($fsPath, "Create sandbox with $VMCount VM(s) of $SizeBytes bytes and a repository")) { return }
        try {
            $sb = Invoke-HVEngine -Method 'createSandbox' -Params @{ path = $fsPath; vmCount = $VMCount; sizeBytes = $SizeBytes }
        } catch {
            $PSCmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $_ -TargetObject $fsPath))
        }
        $obj = New-Object PSObject -Property ([ordered]@{ Path = $fsPath; Repository = [string]$sb.repository; VMFolder = [string]$sb.vmFolder; VMPaths = @($sb.vmPaths) })
        $obj.PSObject.TypeNames.Insert(0, 'HVBackup.Sandbox')
        $obj
    }
}
