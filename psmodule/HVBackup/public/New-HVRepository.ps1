function New-HVRepository {
    <#
    .SYNOPSIS
    Creates an HVBackup repository.

    .DESCRIPTION
    Creates a new, empty HVBackup repository in a folder: the deduplicating, compressed
    store that restore points are written to. With -Encrypt, every object in it is
    encrypted with a key protected by the password (from -Password or -Credential); the
    password is needed for every later use of the repository and cannot be recovered.
    The folder must not already hold a repository.

    .PARAMETER Path
    The folder to create the repository in. Created if it does not exist.

    .PARAMETER Encrypt
    Encrypt the repository. Requires -Password or -Credential.

    .PARAMETER Password
    The repository password, as a SecureString (Read-Host -AsSecureString).

    .PARAMETER Credential
    A credential whose password becomes the repository password (the user name is ignored).

    .OUTPUTS
    HVBackup.Repository. The new repository's details.

    .EXAMPLE
    New-HVRepository -Path D:\Backups\Repo1

    Creates an unencrypted repository in D:\Backups\Repo1.

    .EXAMPLE
    New-HVRepository -Path \\nas\hv\Repo2 -Encrypt -Password (Read-Host -AsSecureString 'Password')

    Creates an encrypted repository on a share, asking for its password.

    .EXAMPLE
    New-HVRepository -Path D:\Backups\Repo3 -WhatIf

    Shows what would be created without creating anything.
    #>
    [CmdletBinding(SupportsShouldProcess, DefaultParameterSetName = 'Password')]
    [OutputType('HVBackup.Repository')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'Repository')]
        [string] $Path,

        [Parameter()]
        [switch] $Encrypt,

        [Parameter(ParameterSetName = 'Password')]
        [System.Security.SecureString] $Password,

        [Parameter(Mandatory, ParameterSetName = 'Credential')]
        [System.Management.Automation.PSCredential] $Credential
    )
    begin {
        if ($Encrypt -and $null -eq $Password -and $null -eq $Credential) {
            $ex = New-HVEngineException -Code 'ERR_INVALID_ARGUMENT' -Message '-Encrypt needs a password: give -Password or -Credential.'
            $PSCmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $ex -TargetObject $Path))
        }
    }
    process {
        $fsPath = ConvertTo-HVFileSystemPath $Path -Cmdlet $PSCmdlet
        $what = 'Create repository'
        if ($Encrypt) { $what = 'Create encrypted repository' }
        if (-not $PSCmdlet.ShouldProcess($fsPath, $what)) { return }
        $params = @{ path = $fsPath; encrypt = [bool]$Encrypt }
        Add-HVPassword -Params $params -Password $Password -Credential $Credential
        try {
            Invoke-HVEngine -Method 'initRepository' -Params $params | ConvertTo-HVObject -TypeName 'HVBackup.Repository'
        } catch {
            $PSCmdlet.ThrowTerminatingError((New-HVErrorRecord -ErrorObject $_ -TargetObject $fsPath))
        }
    }
}
