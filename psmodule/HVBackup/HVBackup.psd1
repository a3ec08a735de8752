@{
    RootModule           = 'HVBackup.psm1'
    ModuleVersion        = '0.1.0'
    GUID                 = '5b0c7f0e-6a39-4f0b-9d4e-2f8e1c7a9b31'
    Author               = 'HVBackup contributors'
    CompanyName          = 'HVBackup'
    Copyright            = '(c) HVBackup contributors. Apache-2.0.'
    Description          = 'Backup, archive and recovery for Hyper-V virtual machines: deduplicated, compressed, optionally encrypted restore points; restore; verification.'
    PowerShellVersion    = '5.1'
    CompatiblePSEditions = @('Desktop', 'Core')
    FunctionsToExport    = @(
        'Add-HVRepositoryKey'
        'Backup-HVVM'
        'Export-HVArchive'
        'Get-HVRepository'
        'Get-HVRepositoryKey'
        'Get-HVRestorePoint'
        'Get-HVVM'
        'Import-HVArchive'
        'Invoke-HVRetention'
        'New-HVRepository'
        'New-HVSandbox'
        'Remove-HVRepositoryKey'
        'Remove-HVRestorePoint'
        'Repair-HVRepository'
        'Restore-HVVM'
        'Set-HVRepositoryKey'
        'Start-HVArchiveWatch'
        'Test-HVRestorePoint'
    )
    CmdletsToExport      = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
    FormatsToProcess     = @('HVBackup.Format.ps1xml')
    PrivateData          = @{
        PSData = @{
            Tags       = @('Hyper-V', 'Backup', 'VHDX', 'Restore', 'Archive')
            LicenseUri = 'https://www.apache.org/licenses/LICENSE-2.0'
        }
    }
}
