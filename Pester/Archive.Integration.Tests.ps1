# Retention, archive media and repository keys through the module, on the real engine.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Remove-Item Env:HVBACKUP_BRIDGE_TEST_METHODS -ErrorAction SilentlyContinue
    Import-HVBackupForTest
    # Not under TestDrive: Pester removes what a Describe block added there when the block ends,
    # and the GC of the retention block stores new packs (a rewritten pack) the export block needs.
    $script:sbRoot = Join-Path ([System.IO.Path]::GetTempPath()) ('hvb-pester-archive-' + [guid]::NewGuid())
    $script:sb = New-HVSandbox -Path (Join-Path $sbRoot 'sb') -VMCount 1 -SizeBytes 32MB
    1..3 | ForEach-Object { [void](Get-HVVM -Path $sb.VMFolder | Backup-HVVM -Repository $sb.Repository) }
}

AfterAll {
    Remove-Module HVBackup -Force -ErrorAction SilentlyContinue
    if ($script:sbRoot) { Remove-Item -LiteralPath $script:sbRoot -Recurse -Force -ErrorAction SilentlyContinue }
}

Describe 'Invoke-HVRetention' -Tag Integration {
    It '-WhatIf lists the decisions and removes nothing' {
        $before = Get-FolderSnapshot -Path $sb.Repository
        [void](Invoke-HVRetention -Repository $sb.Repository -KeepLast 1 -WhatIf)
        Compare-Object @($before) @(Get-FolderSnapshot -Path $sb.Repository) | Should -BeNullOrEmpty
        @(Get-HVRestorePoint -Repository $sb.Repository).Count | Should -Be 3
    }
    It 'keeps the last two restore points and prunes the rest' {
        $newest = @(Get-HVRestorePoint -Repository $sb.Repository | Sort-Object CreatedAt | Select-Object -Last 2).Id
        $r = Invoke-HVRetention -Repository $sb.Repository -KeepLast 2 -Prune -Confirm:$false
        $r.PSObject.TypeNames[0] | Should -Be 'HVBackup.RetentionResult'
        $r.Removed | Should -Be 1
        $r.Kept | Should -Be 2
        $left = @(Get-HVRestorePoint -Repository $sb.Repository).Id
        Compare-Object @($newest) @($left) | Should -BeNullOrEmpty
        (Test-HVRestorePoint -Repository $sb.Repository).OK | Should -BeTrue
    }
}

Describe 'Export-HVArchive and Import-HVArchive' -Tag Integration {
    It 'exports every restore point to media files and reads the catalog back from them' {
        $media = Join-Path (Resolve-Path 'TestDrive:\').ProviderPath 'media'
        $x = Export-HVArchive -Repository $sb.Repository -Pool weekly -MediaPath $media
        $x.PSObject.TypeNames[0] | Should -Be 'HVBackup.ArchiveExport'
        @($x.Points).Count | Should -Be 2
        $x.BytesWritten | Should -BeGreaterThan 0
        $files = @(Get-ChildItem -LiteralPath $media -Filter '*.tar')
        $files.Count | Should -BeGreaterOrEqual 1
        $cat = $files | Sort-Object Name | Import-HVArchive
        $cat.PSObject.TypeNames[0] | Should -Be 'HVBackup.ArchiveCatalog'
        $cat.Pool | Should -Be 'weekly'
        @($cat.Points).Count | Should -Be 2
    }
    It 'restores the newest point of vm01 from the media alone, same disk content' {
        $files = @(Get-ChildItem -LiteralPath (Join-Path (Resolve-Path 'TestDrive:\').ProviderPath 'media') -Filter '*.tar' | Sort-Object Name)
        $r = Restore-HVVM -MediaPath $files.FullName -VMName vm01 -Path 'TestDrive:\from-media'
        $r.PSObject.TypeNames[0] | Should -Be 'HVBackup.RestoreResult'
        $r.VMName | Should -Be 'vm01'
        $restored = @($r.Disks)[0].Path
        Get-RawDiskHash $restored | Should -Be (Get-RawDiskHash (Join-Path $sb.VMPaths[0] 'Virtual Hard Disks/vm01.vhdx'))
    }
    It 'Start-HVArchiveWatch stops after -Duration with a summary' {
        $w = Start-HVArchiveWatch -Repository $sb.Repository -Pool live -MediaPath (Join-Path (Resolve-Path 'TestDrive:\').ProviderPath 'live') -Duration (New-TimeSpan -Seconds 2)
        $w.PSObject.TypeNames[0] | Should -Be 'HVBackup.ArchiveWatch'
        $w.Pool | Should -Be 'live'
        $w.Since | Should -BeOfType [datetime]
    }
}

Describe 'Repository keys' -Tag Integration {
    BeforeAll {
        $script:enc = Join-Path (Resolve-Path 'TestDrive:\').ProviderPath 'enc'
        $script:pw1 = ConvertTo-SecureString 'first password' -AsPlainText -Force
        $script:pw2 = ConvertTo-SecureString 'second password' -AsPlainText -Force
        [void](New-HVRepository -Path $enc -Encrypt -Password $pw1)
    }
    It 'adds a second password that opens the repository' {
        $k = Add-HVRepositoryKey -Repository $enc -Password $pw1 -NewPassword $pw2
        $k.PSObject.TypeNames[0] | Should -Be 'HVBackup.RepositoryKey'
        (Get-HVRepository -Path $enc -Password $pw2).Encrypted | Should -BeTrue
        @(Get-HVRepositoryKey -Repository $enc -Password $pw2).Count | Should -Be 2
    }
    It 'removes the first password through the pipeline; it no longer opens the repository' {
        Get-HVRepositoryKey -Repository $enc -Password $pw2 | Where-Object { -not $_.Current } | Remove-HVRepositoryKey -Password $pw2 -Confirm:$false
        $caught = $null
        try { Get-HVRepository -Path $enc -Password $pw1 } catch { $caught = $_ }
        $caught.FullyQualifiedErrorId | Should -Be 'HVBackup.ERR_AUTH,Get-HVRepository'
        [string]$caught.CategoryInfo.Category | Should -Be 'AuthenticationError'
    }
    It 'changes the password with Set-HVRepositoryKey; the old one fails, the new one works' {
        $pw3 = ConvertTo-SecureString 'third password' -AsPlainText -Force
        $k = Set-HVRepositoryKey -Repository $enc -Password $pw2 -NewPassword $pw3
        $k.PSObject.TypeNames[0] | Should -Be 'HVBackup.RepositoryKey'
        $k.Repository | Should -Be $enc
        $caught = $null
        try { Get-HVRepository -Path $enc -Password $pw2 } catch { $caught = $_ }
        $caught.FullyQualifiedErrorId | Should -Be 'HVBackup.ERR_AUTH,Get-HVRepository'
        [string]$caught.CategoryInfo.Category | Should -Be 'AuthenticationError'
        (Get-HVRepository -Path $enc -Password $pw3).Encrypted | Should -BeTrue
        $keys = @(Get-HVRepositoryKey -Repository $enc -Password $pw3)
        $keys.Count | Should -Be 1
        $keys[0].Id | Should -Be $k.Id
        $keys[0].Current | Should -BeTrue
    }
}
