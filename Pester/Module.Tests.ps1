BeforeDiscovery {
    $moduleRoot = Join-Path (Split-Path -Parent $PSScriptRoot) 'psmodule/HVBackup'
    $script:moduleFiles = @(Get-ChildItem -LiteralPath $moduleRoot -Recurse -Include '*.ps1', '*.psm1', '*.psd1' | ForEach-Object { @{ File = $_.FullName; Name = $_.Name } })
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-HVBackupForTest
    function Expand-Token($Tokens) {
        # Tokens, with those nested in expandable strings ("... $x ...") flattened in.
        foreach ($t in $Tokens) {
            $t
            if ($t -is [System.Management.Automation.Language.StringExpandableToken] -and $t.NestedTokens) { Expand-Token $t.NestedTokens }
        }
    }
}

Describe 'HVBackup module manifest' -Tag Unit {
    It 'is a valid manifest for Desktop and Core, PowerShell 5.1' {
        $m = Test-ModuleManifest -Path $ModuleManifest
        $m.PowerShellVersion | Should -Be ([version]'5.1')
        $m.CompatiblePSEditions | Should -Be @('Desktop', 'Core')
        $m.ExportedFormatFiles.Count | Should -Be 1
    }
    It 'exports exactly the public functions, one per file' {
        $public = @(Get-ChildItem (Join-Path $RepoRoot 'psmodule/HVBackup/public') -Filter '*.ps1' | ForEach-Object { $_.BaseName } | Sort-Object)
        $exported = @((Get-Module HVBackup).ExportedFunctions.Keys | Sort-Object)
        $exported | Should -Be $public
        (Import-PowerShellDataFile $ModuleManifest).FunctionsToExport | Sort-Object | Should -Be $public
    }
    It 'uses only approved verbs' {
        $approved = (Get-Verb).Verb
        foreach ($cmd in (Get-Command -Module HVBackup)) { $approved | Should -Contain $cmd.Verb -Because $cmd.Name }
    }
    It 'has a default view for every HVBackup type a cmdlet declares' {
        $declared = Get-Command -Module HVBackup | ForEach-Object { $_.OutputType.Name } | Sort-Object -Unique
        $formatXml = [xml](Get-Content -Raw (Join-Path $RepoRoot 'psmodule/HVBackup/HVBackup.Format.ps1xml'))
        $viewed = @($formatXml.Configuration.ViewDefinitions.View | ForEach-Object { $_.ViewSelectedBy.TypeName })
        foreach ($t in $declared) { $viewed | Should -Contain $t }
    }
}

Describe 'Windows PowerShell 5.1 syntax' -Tag Unit {
    It '<Name> parses and uses no PowerShell 7-only syntax' -TestCases $moduleFiles {
        param($File)
        $tokens = $null; $errors = $null
        $ast = [System.Management.Automation.Language.Parser]::ParseFile($File, [ref]$tokens, [ref]$errors)
        $errors | Should -BeNullOrEmpty
        $banned = @('QuestionMark', 'QuestionQuestion', 'QuestionQuestionEquals', 'AndAnd', 'OrOr', 'QuestionDot', 'QuestionLBracket', 'Clean')
        # "$name?" is one variable on 7 and "$name" + "?" on 5.1: write "${name}?".
        $bad = @(Expand-Token $tokens | Where-Object {
                $banned -contains [string]$_.Kind -or
                ($_.Kind -eq 'Parameter' -and $_.Text -eq '-Parallel') -or
                ($_.Kind -eq 'Variable' -and $_.Name -match '\?$')
            } | ForEach-Object { "$($_.Text) at line $($_.Extent.StartLineNumber)" })
        $bad | Should -BeNullOrEmpty
        $cleanBlocks = $ast.FindAll({ param($n) $n -is [System.Management.Automation.Language.NamedBlockAst] -and [string]$n.BlockKind -eq 'Clean' }, $true)
        @($cleanBlocks).Count | Should -Be 0
    }
    It 'the check itself rejects 7-only syntax' {
        $tokens = $null; $errors = $null
        [void][System.Management.Automation.Language.Parser]::ParseInput('$a = $b ? 1 : 2; $c = $d ?? 3; git pull && echo ok; "id $x?"', [ref]$tokens, [ref]$errors)
        @($tokens | Where-Object { 'QuestionMark', 'QuestionQuestion', 'AndAnd' -contains [string]$_.Kind }).Count | Should -Be 3
        @(Expand-Token $tokens | Where-Object { $_.Kind -eq 'Variable' -and $_.Name -eq 'x?' }).Count | Should -Be 1
    }
}
