function Remove-HVRepositoryKey {
    <#
    .SYNOPSIS
    Removes a password (key file) from an encrypted repository.

    .DESCRIPTION
    Deletes one key file, so its password no longer opens the repository. The engine never
    removes the last key file (not even with -Force), and refuses to remove the key the given
    password opened unless -Force is given. Asks for confirmation unless -Confirm:$false is given.

    .PARAMETER Repository
    The encrypted repository's folder. Taken from the Repository property of Get-HVRepositoryKey output.

    .PARAMETER Id
    The key file's id. Taken from the Id property of Get-HVRepositoryKey output.

    .PARAMETER Password
    A current password of the repository.

    .PARAMETER Force
    Remove the key even when it is the one -Password opened. Does not allow removing the last key.

    .OUTPUTS
    HVBackup.RemoveResult. The removed key id and the status.

    .EXAMPLE
    Get-HVRepositoryKey E:\Secure -Password $current | Where-Object User -eq 'olduser' | Remove-HVRepositoryKey -Password $current

    Removes the password a former colleague added.

    .EXAMPLE
    Remove-HVRepositoryKey -Repository E:\Secure -Id 9f8e7d... -Password $current -Confirm:$false

    Removes one key without asking.
    #>
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'High')]
    [OutputType('HVBackup.RemoveResult')]
    param(
        [Parameter(Mandatory, ValueFromPipelineByPropertyName)]
        [string] $Repository,

        [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)]
        [Alias('KeyId')]
        [string] $Id,

        [Parameter(Mandatory)]
        [System.Security.SecureString] $Password,

        [Parameter()]
        [switch] $Force
    )
    process {
        $repoPath = ConvertTo-HVFileSystemPath $Repository -Cmdlet $PSCmdlet
        if (-not $PSCmdlet.ShouldProcess("Remove key $Id from repository '$repoPath': its password will no longer open the repository", "Remove key ${Id}?", 'Remove-HVRepositoryKey')) { return }
        $params = @{ repository = $repoPath; password = (ConvertFrom-HVSecureString $Password); keyId = $Id; force = [bool]$Force }
        try {
            $r = Invoke-HVEngine -Method 'removeRepositoryKey' -Params $params
        } catch {
            $PSCmdlet.WriteError((New-HVErrorRecord -ErrorObject $_ -TargetObject $Id))
            return
        }
        $obj = New-Object PSObject -Property ([ordered]@{ Ids = @($r.removed); Status = 'removed' })
        $obj.PSObject.TypeNames.Insert(0, 'HVBackup.RemoveResult')
        $obj
    }
}
